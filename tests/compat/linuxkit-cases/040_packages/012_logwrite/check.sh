#!/bin/sh
set -e
sleep 5; ls /var/log/fill-the-logs.log.* >/dev/null && echo "logwrite: rotated"; poweroff -f
