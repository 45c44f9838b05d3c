#!/bin/sh
# Applies every /etc/sysctl.d/*.conf in order (busybox sysctl -p).
set -e
for f in /etc/sysctl.d/*.conf; do
	[ -e "$f" ] || continue
	sysctl -p "$f"
done
