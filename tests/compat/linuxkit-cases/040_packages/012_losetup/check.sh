#!/bin/sh
set -e
losetup -a | grep -q disk.img && echo "losetup: attached"
