#!/usr/bin/env python3
"""An Open Inference Protocol v2 client with the binary tensor data extension, written from the extension's
specification (Triton's extension_binary_data.md) and the way NVIDIA's tritonclient.http builds and reads its
messages, independently of the project's own encoder and decoder.

Requests: a JSON header, then each binary input's raw tensor in input order; `Inference-Header-Content-Length`
gives the header's length (absent when no input is binary, 0 for the raw form); no Content-Type is sent.
Tensors are little-endian, row-major; BOOL one byte; BYTES elements a 4-byte little-endian length then the
bytes; FP16 numpy float16; BF16 the upper 16 bits of float32. Answers: when `Inference-Header-Content-Length`
is present, the JSON header of that length, then each output's `binary_data_size` bytes in output order.

Usage: python3 oip_binary_client.py < plan.json > result.json

plan:   {"url": "http://host:port", "cases": [case, ...]}
case:   {"id": str, "model": str,
         "inputs": [{"name", "datatype", "shape", "values", "binary": bool}],
         "outputs": [{"name", "binary": bool | null}] | null   (null: ask every output, binary_data_output true),
         "binary_data_output": bool (optional, request-level),
         "raw": bool (optional: header length 0, the only input's bytes as the whole body),
         "compression": "gzip" | "deflate" (optional),
         "tamper": {"binary_data_size_delta": int, "truncate": int, "truncate_compressed": int}
                   (optional: corrupt a well-formed request; truncate cuts the body before compression,
                   truncate_compressed the compressed stream)}
values: BOOL true/false; 8- to 32-bit integers as numbers; INT64/UINT64 as decimal strings; FP16/FP32/FP64/BF16
        as numbers, or "NaN", "Infinity", "-Infinity", "-0"; BYTES as strings (UTF-8) or {"b64": str}.
result: {"cases": [{"id", "status", "content_type", "content_encoding", "header_length", "request_header",
         "body" (the JSON header or JSON answer), "outputs": {name: {"datatype", "shape", "binary", "values"}},
         "error" (when the answer could not be read)}]}
Output values use the same canonical form as input values, so a caller compares them with what it sent.
"""

import base64
import gzip
import http.client
import json
import math
import struct
import sys
import urllib.parse
import zlib

import numpy as np

# The little-endian numpy dtype of each fixed-size datatype on the wire.
WIRE_DTYPE = {
    "BOOL": np.dtype("?"),
    "UINT8": np.dtype("u1"),
    "UINT16": np.dtype("<u2"),
    "UINT32": np.dtype("<u4"),
    "UINT64": np.dtype("<u8"),
    "INT8": np.dtype("i1"),
    "INT16": np.dtype("<i2"),
    "INT32": np.dtype("<i4"),
    "INT64": np.dtype("<i8"),
    "FP16": np.dtype("<f2"),
    "FP32": np.dtype("<f4"),
    "FP64": np.dtype("<f8"),
    "BF16": np.dtype("<u2"),  # raw bits: the upper half of a float32
}
FLOAT_TYPES = ("FP16", "FP32", "FP64", "BF16")


def to_float(v):
    """A canonical float value (number or special string) as a Python float."""
    if isinstance(v, str):
        return {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf, "-0": -0.0}[v]
    return float(v)


def to_bytes(v):
    """A canonical BYTES element as bytes."""
    if isinstance(v, dict):
        return base64.b64decode(v["b64"])
    return v.encode("utf-8")


def to_array(datatype, shape, values):
    """The numpy array of an input in the plan (BYTES: an object array of bytes)."""
    if datatype == "BYTES":
        arr = np.empty(len(values), dtype=np.object_)
        for i, v in enumerate(values):
            arr[i] = to_bytes(v)
        return arr.reshape(shape)
    if datatype in FLOAT_TYPES:
        if datatype == "BF16":
            return np.array([to_float(v) for v in values], dtype=np.float32).reshape(shape)
        return np.array([to_float(v) for v in values], dtype=WIRE_DTYPE[datatype]).reshape(shape)
    if datatype in ("INT64", "UINT64"):
        return np.array([int(v) for v in values], dtype=WIRE_DTYPE[datatype]).reshape(shape)
    if datatype == "BOOL":
        return np.array([bool(v) for v in values], dtype=np.bool_).reshape(shape)
    return np.array(values, dtype=WIRE_DTYPE[datatype]).reshape(shape)


def serialize_bytes(arr):
    """BYTES elements in row-major order, each a 4-byte little-endian unsigned length then the bytes."""
    parts = []
    for obj in arr.reshape(-1):
        parts.append(struct.pack("<I", len(obj)))
        parts.append(obj)
    return b"".join(parts)


def deserialize_bytes(buf):
    """The elements of a BYTES tensor's binary data."""
    out = []
    at = 0
    while at < len(buf):
        if at + 4 > len(buf):
            raise ValueError(f"BYTES data ends inside an element length at offset {at}")
        (n,) = struct.unpack_from("<I", buf, at)
        at += 4
        if at + n > len(buf):
            raise ValueError(f"BYTES element of {n} bytes at offset {at} runs past the {len(buf)} bytes given")
        out.append(bytes(buf[at : at + n]))
        at += n
    return out


def to_wire(datatype, arr):
    """The binary data of a tensor."""
    if datatype == "BYTES":
        return serialize_bytes(arr)
    if datatype == "BF16":
        # Truncation to bfloat16: the high-order 16 bits of each float32.
        bits = np.ascontiguousarray(arr, dtype="<f4").view("<u4") >> 16
        return bits.astype("<u2").tobytes()
    return np.ascontiguousarray(arr, dtype=WIRE_DTYPE[datatype]).tobytes()


def json_data(datatype, arr):
    """The `data` of an input sent as JSON, as tritonclient builds it (row-major Python scalars)."""
    if datatype == "BYTES":
        return [b.decode("utf-8") for b in arr.reshape(-1)]
    return [v.item() for v in arr.reshape(-1)]


def canonical_float(datatype, v):
    """A float element in canonical form: a JSON number, or a string for NaN, infinities and negative zero."""
    f = float(v)
    if math.isnan(f):
        return "NaN"
    if math.isinf(f):
        return "Infinity" if f > 0 else "-Infinity"
    if f == 0 and math.copysign(1.0, f) < 0:
        return "-0"
    if datatype == "FP32":
        # The shortest decimal that reads back as the same float32 (0.1, not 0.10000000149011612).
        return float(np.format_float_scientific(v, unique=True))
    # FP16 and FP64 values are exact as a Python float.
    return f


def canonical_values(datatype, arr):
    """The elements of a decoded output in canonical form."""
    flat = arr.reshape(-1)
    if datatype == "BYTES":
        out = []
        for b in flat:
            b = b if isinstance(b, bytes) else str(b).encode("utf-8")
            try:
                out.append(b.decode("utf-8"))
            except UnicodeDecodeError:
                out.append({"b64": base64.b64encode(b).decode("ascii")})
        return out
    if datatype == "BF16":
        floats = (flat.astype("<u4") << 16).view("<f4")
        return [canonical_float("FP32", f) for f in floats]
    if datatype in FLOAT_TYPES:
        return [canonical_float(datatype, f) for f in flat]
    if datatype in ("INT64", "UINT64"):
        return [str(int(v)) for v in flat]
    if datatype == "BOOL":
        return [bool(v) for v in flat]
    return [int(v) for v in flat]


def build_request(case):
    """The body, headers and JSON header of a case's request, as tritonclient.http builds them."""
    infer_request = {}
    parameters = {}
    inputs = []
    raw_parts = []
    for spec in case["inputs"]:
        arr = to_array(spec["datatype"], spec["shape"], spec["values"])
        tensor = {"name": spec["name"], "shape": list(spec["shape"]), "datatype": spec["datatype"]}
        if spec.get("binary", True):
            raw = to_wire(spec["datatype"], arr)
            tensor["parameters"] = {"binary_data_size": len(raw)}
            raw_parts.append(raw)
        else:
            tensor["data"] = json_data(spec["datatype"], arr)
        inputs.append(tensor)
    infer_request["inputs"] = inputs
    if case.get("outputs") is not None:
        outs = []
        for o in case["outputs"]:
            t = {"name": o["name"]}
            if o.get("binary") is not None:
                t["parameters"] = {"binary_data": bool(o["binary"])}
            outs.append(t)
        infer_request["outputs"] = outs
    else:
        # No outputs named: tritonclient asks every output, all binary.
        parameters["binary_data_output"] = True
    if case.get("binary_data_output") is not None:
        parameters["binary_data_output"] = bool(case["binary_data_output"])
    if parameters:
        infer_request["parameters"] = parameters

    tamper = case.get("tamper") or {}
    if "binary_data_size_delta" in tamper:
        first = next(t for t in inputs if "parameters" in t and "binary_data_size" in t["parameters"])
        first["parameters"]["binary_data_size"] += tamper["binary_data_size_delta"]

    headers = {}
    if case.get("raw"):
        if len(raw_parts) != 1 or len(inputs) != 1:
            raise ValueError("the raw form carries exactly one binary input")
        body = raw_parts[0]
        headers["Inference-Header-Content-Length"] = "0"
        request_header = None
    else:
        request_json = json.dumps(infer_request).encode("utf-8")
        request_header = infer_request
        if raw_parts:
            body = b"".join([request_json, *raw_parts])
            headers["Inference-Header-Content-Length"] = str(len(request_json))
        else:
            body = request_json
    if "truncate" in tamper:
        body = body[: len(body) - tamper["truncate"]]

    compression = case.get("compression")
    if compression == "gzip":
        body = gzip.compress(body)
        headers["Content-Encoding"] = "gzip"
    elif compression == "deflate":
        # HTTP's "deflate" is the zlib format (RFC 1950), which is what tritonclient sends.
        body = zlib.compress(body)
        headers["Content-Encoding"] = "deflate"
    if "truncate_compressed" in tamper:
        body = body[: len(body) - tamper["truncate_compressed"]]
    return body, headers, request_header


def decode_answer(body, header_length):
    """The JSON part and the decoded outputs of an answer."""
    if header_length is None:
        result = json.loads(body)
        buffer = b""
    else:
        if header_length > len(body):
            raise ValueError(f"Inference-Header-Content-Length {header_length} exceeds the {len(body)}-byte body")
        result = json.loads(body[:header_length])
        buffer = body[header_length:]
    outputs = {}
    at = 0
    for out in result.get("outputs", []):
        datatype = out["datatype"]
        shape = out["shape"]
        size = (out.get("parameters") or {}).get("binary_data_size")
        if size is not None:
            if header_length is None:
                raise ValueError(f"output {out['name']} has binary_data_size but the answer has no header length")
            chunk = buffer[at : at + size]
            if len(chunk) != size:
                raise ValueError(f"output {out['name']}: binary_data_size {size} runs past the body")
            at += size
            if datatype == "BYTES":
                elems = deserialize_bytes(chunk)
                arr = np.empty(len(elems), dtype=np.object_)
                for i, e in enumerate(elems):
                    arr[i] = e
            else:
                dtype = WIRE_DTYPE[datatype]
                if size % dtype.itemsize != 0:
                    raise ValueError(f"output {out['name']}: {size} bytes is not a whole number of {datatype}")
                arr = np.frombuffer(chunk, dtype=dtype)
            binary = True
        else:
            data = out.get("data")
            if datatype == "BYTES":
                arr = np.empty(len(data), dtype=np.object_)
                for i, e in enumerate(data):
                    arr[i] = e.encode("utf-8") if isinstance(e, str) else e
            elif datatype in FLOAT_TYPES:
                if any(v is None for v in data):
                    # JSON has no NaN or infinities: a null element is reported as null, not guessed.
                    outputs[out["name"]] = {
                        "datatype": datatype,
                        "shape": shape,
                        "binary": False,
                        "values": [
                            None if v is None else canonical_float(datatype, WIRE_DTYPE[datatype].type(v))
                            for v in data
                        ],
                    }
                    continue
                arr = np.array([to_float(v) if isinstance(v, str) else v for v in data], dtype=WIRE_DTYPE[datatype])
            else:
                arr = np.array(data, dtype=WIRE_DTYPE[datatype])
            binary = False
        count = int(np.prod(shape)) if len(shape) else 1
        if arr.size != count:
            raise ValueError(f"output {out['name']}: {arr.size} elements for shape {shape}")
        arr = arr.reshape(shape)
        outputs[out["name"]] = {
            "datatype": datatype,
            "shape": shape,
            "binary": binary,
            "values": canonical_values(datatype, arr),
        }
    if at != len(buffer):
        raise ValueError(f"{len(buffer) - at} bytes after the last binary output")
    return result, outputs


def run_case(url, case):
    """Sends one case and reads its answer."""
    body, headers, request_header = build_request(case)
    parsed = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=60)
    path = f"/v2/models/{urllib.parse.quote(case['model'])}/infer"
    try:
        # http.client adds Content-Length and no Content-Type, like tritonclient.
        conn.request("POST", path, body=body, headers=headers)
        res = conn.getresponse()
        content = res.read()
        status = res.status
        answer_headers = {k.lower(): v for k, v in res.getheaders()}
    finally:
        conn.close()
    encoding = answer_headers.get("content-encoding")
    if encoding == "gzip":
        content = gzip.decompress(content)
    elif encoding == "deflate":
        content = zlib.decompress(content)
    header_length = answer_headers.get("inference-header-content-length")
    header_length = int(header_length) if header_length is not None else None
    result = {
        "id": case["id"],
        "status": status,
        "content_type": answer_headers.get("content-type"),
        "content_encoding": encoding,
        "header_length": header_length,
        "request_header": request_header,
        "request_bytes": len(body),
    }
    try:
        if status != 200:
            result["body"] = json.loads(content)
        else:
            result["body"], result["outputs"] = decode_answer(content, header_length)
            if header_length is not None:
                result["body"]["outputs"] = [
                    {k: v for k, v in o.items() if k != "data"} for o in result["body"].get("outputs", [])
                ]
    except Exception as e:  # noqa: BLE001 - reported to the caller with the raw bytes
        result["error"] = f"{type(e).__name__}: {e}"
        result["raw_hex"] = content[:512].hex()
    return result


def main():
    plan = json.load(sys.stdin)
    results = []
    for case in plan["cases"]:
        try:
            results.append(run_case(plan["url"], case))
        except Exception as e:  # noqa: BLE001 - a case the client itself could not build or send
            results.append({"id": case.get("id"), "error": f"{type(e).__name__}: {e}"})
    json.dump({"cases": results}, sys.stdout)


if __name__ == "__main__":
    main()
