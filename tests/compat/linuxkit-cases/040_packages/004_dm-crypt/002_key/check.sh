#!/bin/sh
set -e
test -b /dev/mapper/crypt_dev && echo "dm-crypt: mapped"
