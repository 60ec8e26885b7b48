"""KServe's own clients (InferenceRESTClient, InferenceGRPCClient) against a running v2 server, in a process of
their own: KServe's SDK and tritonclient.grpc cannot be imported together (kserve/kserve#3099).

    python -m tests.serving.v2.kserve_clients < {"rest_url", "grpc_target", "models", "images": [base64, ...]}

prints, as JSON per model, whether the server and model say ready and each route's outputs by name:
"rest-binary" (the SDK's InferRequest, binary BYTES as it sends them by default), "rest-json" (a JSON body with
base64 BYTES elements) and "grpc".
"""

from __future__ import annotations

import asyncio
import base64
import json
import sys

import numpy as np
from kserve import InferenceGRPCClient, InferenceRESTClient, RESTConfig
from kserve.protocol.infer_type import InferInput, InferRequest, InferResponse


def binary_request(model: str, images: list[bytes]) -> InferRequest:
    given = InferInput("image", [len(images)], "BYTES")
    given.set_data_from_numpy(np.array(images, dtype=object))
    return InferRequest(model_name=model, infer_inputs=[given])


def json_request(images: list[bytes]) -> dict:
    data = [base64.b64encode(b).decode("ascii") for b in images]
    return {"inputs": [{"name": "image", "shape": [len(images)], "datatype": "BYTES", "data": data}]}


def by_name(response: InferResponse) -> dict[str, list]:
    return {o.name: o.as_numpy().tolist() for o in response.outputs}


async def rest(url: str, model: str, images: list[bytes]) -> dict:
    client = InferenceRESTClient(RESTConfig(protocol="v2", retries=0))
    try:
        ready = await client.is_server_ready(url) and await client.is_model_ready(url, model)
        binary = await client.infer(url, binary_request(model, images), model_name=model)
        plain = await client.infer(url, json_request(images), model_name=model)
        return {"ready": ready, "rest-binary": by_name(binary), "rest-json": by_name(plain)}
    finally:
        await client.close()


async def grpc(target: str, model: str, images: list[bytes]) -> dict:
    client = InferenceGRPCClient(target, retries=0)
    try:
        ready = await client.is_server_ready() and await client.is_model_ready(model)
        return {"grpc-ready": ready, "grpc": by_name(await client.infer(binary_request(model, images)))}
    finally:
        await client.close()


def main() -> None:
    job = json.load(sys.stdin)
    images = [base64.b64decode(b) for b in job["images"]]
    out = {}
    for model in job["models"]:
        out[model] = asyncio.run(rest(job["rest_url"], model, images))
        out[model].update(asyncio.run(grpc(job["grpc_target"], model, images)))
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
