#!/bin/sh
set -e
test -f /sys/fs/cgroup/cgroup.controllers && echo "cgroup v2: mounted"
