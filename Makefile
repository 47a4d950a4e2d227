# Lambda builds for `sam build` (BuildMethod: makefile, no Docker): SAM runs `make build-<LogicalId>`
# in a copy of the resource's code folder with ARTIFACTS_DIR set. local/lambda_build.py installs a
# layer's locked requirements for Lambda's platform (LAMBDA_ARCHITECTURE, default arm64) and compiles
# every module to bytecode, which Lambda's read-only code directories cannot cache at run time.
ROOT := $(dir $(abspath $(lastword $(MAKEFILE_LIST))))
PYTHON ?= python3.13

build-%Layer:
	$(PYTHON) $(ROOT)local/lambda_build.py layer . "$(ARTIFACTS_DIR)"

build-%Function:
	$(PYTHON) $(ROOT)local/lambda_build.py function . "$(ARTIFACTS_DIR)"
