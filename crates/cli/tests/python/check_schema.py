"""Validate YAML files against a JSON Schema with an implementation
independent of slipway's: PyYAML reads the YAML, jsonschema validates.

usage: check_schema.py SCHEMA FILE...
Prints one JSON object: each file's list of error messages (empty: valid).
"""
import json
import sys

import jsonschema
import yaml

schema = json.load(open(sys.argv[1]))
jsonschema.Draft7Validator.check_schema(schema)
validator = jsonschema.Draft7Validator(schema)
result = {}
for path in sys.argv[2:]:
    with open(path) as f:
        docs = list(yaml.safe_load_all(f))
    result[path] = [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
        for doc in docs
        for e in validator.iter_errors(doc if doc is not None else {})
    ]
print(json.dumps(result, indent=1))
