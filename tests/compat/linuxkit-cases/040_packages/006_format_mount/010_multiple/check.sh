#!/bin/sh
set -e
mountpoint -q /var/lib/one && mountpoint -q /var/lib/two && echo "format_mount: both"
