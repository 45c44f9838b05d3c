#!/bin/sh
# format [-label LABEL] [-force] [DEVICE]: make an ext4 filesystem labelled
# LABEL (default slipway-data) on DEVICE, else on the first disk whose first
# 64 KiB are all zero. Does nothing if a filesystem with LABEL exists (unless
# -force). Unlike LinuxKit's format, the whole disk is used: no partition table.
set -eu
label=slipway-data
force=false
device=
while [ $# -gt 0 ]; do
	case "$1" in
	-label) label=$2; shift 2 ;;
	-force) force=true; shift ;;
	-type) [ "$2" = ext4 ] || { echo "format: only ext4 is supported" >&2; exit 1; }; shift 2 ;;
	*) device=$1; shift ;;
	esac
done
if [ "$force" = false ] && findfs "LABEL=$label" >/dev/null 2>&1; then
	echo "format: LABEL=$label exists: $(findfs "LABEL=$label")"
	exit 0
fi
if [ -z "$device" ]; then
	for d in /sys/block/vd* /sys/block/sd* /sys/block/nvme*n* /sys/block/xvd*; do
		[ -e "$d" ] || continue
		dev=/dev/$(basename "$d")
		[ -b "$dev" ] || continue
		if [ "$(dd if="$dev" bs=65536 count=1 2>/dev/null | tr -d '\000' | wc -c)" -eq 0 ]; then
			device=$dev
			break
		fi
	done
fi
[ -n "$device" ] || { echo "format: no empty disk found" >&2; exit 1; }
echo "format: $device as ext4, LABEL=$label"
mkfs.ext4 -F -q -L "$label" "$device"
