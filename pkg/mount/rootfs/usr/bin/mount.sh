#!/bin/sh
# mount [-label LABEL | -device DEV] [MOUNTPOINT]: mounts a filesystem found
# by label (default slipway-data) at MOUNTPOINT (default /var/lib), creating
# it. A small stand-in for LinuxKit's `mountie` (no uuid, no partition search).
set -eu
label=slipway-data
device=
while [ $# -gt 0 ]; do
	case "$1" in
	-label) label=$2; shift 2 ;;
	-device) device=$2; shift 2 ;;
	*) break ;;
	esac
done
target=${1:-/var/lib}
[ -n "$device" ] || device=$(findfs "LABEL=$label") || { echo "mount: no filesystem LABEL=$label" >&2; exit 1; }
mkdir -p "$target"
mount "$device" "$target"
echo "mount: $device on $target"
