#!/bin/sh
set -e
test "$(cat /proc/sys/net/ipv4/ip_forward)" = 1 && echo "sysctl: applied"
