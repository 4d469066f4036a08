#!/bin/bash
# The PromptSRC repository's name for scripts/ivlp/reproduce_ivlp.sh (same arguments, same run).
exec bash "$(dirname "$0")/../ivlp/reproduce_ivlp.sh" "$@"
