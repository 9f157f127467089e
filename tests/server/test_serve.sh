#!/usr/bin/env bash
# placeholder, replaced by the module's tests
exit 0
