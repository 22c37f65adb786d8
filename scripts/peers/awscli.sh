#!/usr/bin/env bash
# awscli.sh makes sure the AWS command line client (`aws`) is available, for
# tests that drive the built-in S3 endpoint the way a user would (`aws s3 cp`
# of a file large enough to be uploaded in parts). An `aws` already on PATH
# is reused; otherwise Debian's awscli package is installed (needs root).
set -euo pipefail

if command -v aws >/dev/null 2>&1 && aws --version >/dev/null 2>&1; then
	echo "awscli: $(command -v aws) already installed"
	exit 0
fi

if [[ $(id -u) -ne 0 ]]; then
	echo "awscli: aws not found and not root: install the awscli package" >&2
	exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq awscli >/dev/null
command -v aws >/dev/null || { echo "awscli: apt-get did not provide aws" >&2; exit 1; }
echo "awscli: installed $(command -v aws)"
