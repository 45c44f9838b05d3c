#!/bin/sh
set -e
ip -4 addr show eth0 | grep -q inet && echo "dhcpcd: address"
