#!/bin/sh
# A getty on every console= of the kernel command line (tty0 if none).
# INSECURE=true: no login, a root shell (only when asked for).
set -u
consoles=$(tr ' ' '\n' </proc/cmdline | sed -n 's/^console=\([^,]*\).*/\1/p')
[ -n "$consoles" ] || consoles=tty0
login=
[ "${INSECURE:-false}" = true ] && login="-n -l /bin/sh"
for tty in $consoles; do
	[ -e "/dev/$tty" ] || continue
	(
		while true; do
			# shellcheck disable=SC2086
			/sbin/getty $login 115200 "$tty" || sleep 1
		done
	) &
done
wait
