#!/bin/sh
set -e
bpftrace --version && echo "bpftrace: present"
