"""The three PATCH flavours a kube-apiserver accepts, applied to plain JSON documents.

* `application/merge-patch+json` (RFC 7386): objects merge, `null` deletes a key, lists are replaced.
* `application/json-patch+json` (RFC 6902), through the `jsonpatch` library: a body that is not a list of
  operations is a 400 BadRequest; an operation that cannot apply (a failed `test` included) is 422 Invalid.
* `application/strategic-merge-patch+json`, for built-in kinds only (a custom resource answers 415): like a
  merge patch, except that the lists a Go type tags with `patchStrategy:"merge"` are merged element by element
  on their merge key (`ports` by `port`, `conditions` by `type`, `ownerReferences` by `uid`; `finalizers` as a
  set), honouring the `$patch: delete|replace`, `$retainKeys`, `$deleteFromPrimitiveList/<field>` and
  `$setElementOrder/<field>` directives that kubectl sends.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

import jsonpatch
import jsonpointer

from modeladapter.sandbox.apiserver.errors import ApiError, bad_request

JsonDict = dict[str, Any]

MERGE_PATCH = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"
STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"


def merge_patch(target: Any, patch: Any) -> Any:
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def json_patch(target: JsonDict, operations: Any) -> JsonDict:
    if not isinstance(operations, list):
        raise bad_request(
            f"json: cannot unmarshal {type(operations).__name__.replace('dict', 'object')} into Go value of type "
            "jsonpatch.Patch"
        )
    try:
        patch = jsonpatch.JsonPatch(operations)
        result = patch.apply(copy.deepcopy(target))
    except (jsonpatch.InvalidJsonPatch, TypeError, AttributeError, KeyError) as error:
        raise bad_request(str(error) or "invalid JSON patch") from error
    except (jsonpatch.JsonPatchException, jsonpointer.JsonPointerException) as error:
        raise ApiError(422, "Invalid", str(error), {}) from error
    if not isinstance(result, dict):
        raise ApiError(422, "Invalid", "the patch must leave an object", {})
    return result


# --- strategic merge --------------------------------------------------------------------------------------------

# Per list path (dotted, `*` for "any element"), the merge key; "" means a list of primitives merged as a set.
MergeKeys = Mapping[str, str]

COMMON_MERGE_KEYS: dict[str, str] = {"metadata.finalizers": "", "metadata.ownerReferences": "uid"}


def strategic_merge_patch(target: Any, patch: Any, merge_keys: MergeKeys, path: str = "") -> Any:
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    if patch.get("$patch") == "replace":
        return {k: copy.deepcopy(v) for k, v in patch.items() if k != "$patch"}
    if patch.get("$patch") == "delete":
        return None
    result = dict(target) if isinstance(target, dict) else {}
    retain = patch.get("$retainKeys")
    for key, value in patch.items():
        if key in {"$patch", "$retainKeys"} or key.startswith("$setElementOrder/"):
            continue
        if key.startswith("$deleteFromPrimitiveList/"):
            field = key.split("/", 1)[1]
            if isinstance(result.get(field), list) and isinstance(value, list):
                result[field] = [item for item in result[field] if item not in value]
            continue
        child = f"{path}.{key}" if path else key
        if value is None:
            result.pop(key, None)
        elif isinstance(value, list) and child in merge_keys and isinstance(result.get(key), list):
            result[key] = _merge_list(result[key], value, merge_keys[child], merge_keys, child)
        elif isinstance(value, list):
            result[key] = [
                strategic_merge_patch(None, item, merge_keys, f"{child}.*") if isinstance(item, dict) else item
                for item in value
                if not (isinstance(item, dict) and item.get("$patch") == "delete")
            ]
        else:
            merged = strategic_merge_patch(result.get(key), value, merge_keys, child)
            if merged is None:
                result.pop(key, None)
            else:
                result[key] = merged
    if isinstance(retain, list):
        result = {k: v for k, v in result.items() if k in retain}
    return result


def _merge_list(current: list[Any], patch: list[Any], key: str, merge_keys: MergeKeys, path: str) -> list[Any]:
    if not key:  # a set of primitives: union, in order
        merged = list(current)
        for item in patch:
            if item not in merged:
                merged.append(item)
        return merged
    merged = [copy.deepcopy(item) for item in current]
    for item in patch:
        if not isinstance(item, dict):
            raise bad_request(f"the list {path} takes objects with the merge key {key}")
        if item.get("$patch") == "replace":
            return [{k: v for k, v in i.items() if k != "$patch"} for i in patch if isinstance(i, dict)]
        if key not in item:
            raise bad_request(f"map: {item} does not contain declared merge key: {key}")
        index = next((n for n, old in enumerate(merged) if isinstance(old, dict) and old.get(key) == item[key]), None)
        if item.get("$patch") == "delete":
            if index is not None:
                del merged[index]
            continue
        if index is None:
            merged.append(strategic_merge_patch(None, item, merge_keys, f"{path}.*"))
        else:
            merged[index] = strategic_merge_patch(merged[index], item, merge_keys, f"{path}.*")
    return merged
