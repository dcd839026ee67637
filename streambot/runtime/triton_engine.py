"""The Engine role on a Triton Inference Server (the KServe v2 protocol, over HTTP or gRPC).

Each call sends one batch's inputs and reads its outputs: the server keeps nothing of a
stream, so any replica behind a load balancer can serve any room, and the server's dynamic
batcher joins the batches of many rooms into one execution. A client is made per thread
(tritonclient's clients are not to be shared across threads; the face renders on worker
threads). Each request carries the urgency of the turn it renders as its priority level
(``request_urgency``: answers before idle talk; the generated repository enables both levels).

What goes on the wire is what the model takes: each tensor's datatype is read from the
server's model metadata (fp16 for the repository's fp16 model: half the bytes of fp32), and
read again after a failure, as the server may have restarted with another model. On the same
host the tensors travel in system shared memory (``triton_shm``) instead; a server that cannot
map it (a container without the host's /dev/shm) is told so once and gets them on the wire.
``ServedEngine`` (``runtime/served.py``) puts this engine behind the breaker and retry policy.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlsplit

import numpy as np

from streambot.remote import RemoteFailure, retryable_status
from streambot.runtime.base import EngineError, request_urgency
from streambot.runtime.triton_shm import SharedRegion

log = logging.getLogger(__name__)
WireProtocol = Literal["http", "grpc"]
SharedMemory = Literal["auto", "off"]  # auto: when the server is on this host (a loopback url)
NUMPY_TYPES = {"FP32": np.float32, "FP16": np.float16}  # the datatypes a face model may take
LOOPBACK = ("127.0.0.1", "localhost", "::1")
# gRPC's codes as the HTTP statuses Triton's HTTP endpoint gives for the same failures, so
# both protocols follow the one retryable-status rule (streambot.remote).
GRPC_AS_HTTP = {
    "StatusCode.INVALID_ARGUMENT": 400,
    "StatusCode.NOT_FOUND": 404,
    "StatusCode.ABORTED": 409,
    "StatusCode.RESOURCE_EXHAUSTED": 429,
    "StatusCode.INTERNAL": 500,
    "StatusCode.UNKNOWN": 500,
    "StatusCode.UNIMPLEMENTED": 501,
    "StatusCode.UNAVAILABLE": 503,
    "StatusCode.DEADLINE_EXCEEDED": 504,
}


@dataclass(frozen=True)
class ModelWire:
    """What the served model takes and gives: datatype of every tensor, outputs' item dims."""

    types: dict[str, str]
    output_dims: dict[str, tuple[int, ...]]

    @classmethod
    def from_metadata(cls, metadata: dict[str, Any]) -> ModelWire:
        tensors = [*metadata["inputs"], *metadata["outputs"]]
        types = {t["name"]: t["datatype"] for t in tensors}
        unknown = {n: t for n, t in types.items() if t not in NUMPY_TYPES}
        if unknown:
            raise EngineError(f"the served model's tensors are not FP32/FP16: {unknown}")
        dims = {t["name"]: tuple(int(d) for d in t["shape"][1:]) for t in metadata["outputs"]}
        variable = [n for n, d in dims.items() if any(size < 0 for size in d)]
        if variable:  # a face frame has one size: room for it is made before the answer
            raise EngineError(f"the served model's outputs {variable} have no fixed size")
        return cls(types, dims)

    def numpy_type(self, name: str) -> type:
        return NUMPY_TYPES[self.types[name]]

    def nbytes(self, name: str, shape: tuple[int, ...]) -> int:
        return np.dtype(self.numpy_type(name)).itemsize * int(np.prod(shape))


class TritonEngine:
    def __init__(
        self,
        url: str,
        model: str,
        inputs: tuple[str, ...],
        outputs: tuple[str, ...],
        *,
        protocol: WireProtocol = "http",
        timeout_s: float = 1.0,
        shared_memory: SharedMemory = "auto",
    ) -> None:
        try:
            if protocol == "grpc":
                import tritonclient.grpc as client_module
            else:
                import tritonclient.http as client_module
            from tritonclient.utils import InferenceServerException
        except ImportError as exc:
            raise EngineError(
                f"the Triton face needs tritonclient: pip install 'streambot[triton]' ({exc})"
            ) from exc
        self.client_module: Any = client_module
        self._server_error = InferenceServerException
        self.url, self.model, self.protocol = url, model, protocol
        self.input_names, self.output_names = inputs, outputs
        self.timeout_s = timeout_s
        self.shared_memory = shared_memory == "auto" and _on_this_host(url)
        self.name = f"triton-{model}"
        self._local = threading.local()  # this thread's client and shared region
        self._lock = threading.Lock()
        self._wire: ModelWire | None = None
        self._generation = 0  # bumped on every failure: the server's state is read again

    def run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        try:
            return self._infer(inputs)
        except Exception as exc:
            with self._lock:  # the server may have restarted, with another model
                self._wire, self._generation = None, self._generation + 1
            failure = RemoteFailure(f"{type(exc).__name__}: {exc}", retryable=self._retryable(exc))
            raise failure from exc

    def _infer(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        client, wire = self._client(), self.model_wire()
        arrays = {n: np.ascontiguousarray(inputs[n], wire.numpy_type(n)) for n in self.input_names}
        batch = next(iter(arrays.values())).shape[0]
        shapes = {n: (batch, *wire.output_dims[n]) for n in self.output_names}
        sizes = {
            n: np.dtype(wire.numpy_type(n)).itemsize * int(np.prod(s)) for n, s in shapes.items()
        }
        region = self._region(client, sum(a.nbytes for a in arrays.values()) + sum(sizes.values()))
        offsets = region.place(arrays, sizes) if region else {}
        requests = [self._input(n, a, wire, region, offsets) for n, a in arrays.items()]
        wanted = [self._output(n, region, offsets, sizes) for n in self.output_names]
        options: dict[str, Any] = {"priority": int(request_urgency.get())}
        if self.protocol == "grpc":
            options["client_timeout"] = self.timeout_s
        result = client.infer(self.model, requests, outputs=wanted, **options)
        if region:
            return {n: region.read(offsets[n], wire.numpy_type(n), shapes[n]) for n in shapes}
        return {n: result.as_numpy(n).astype(np.float32) for n in self.output_names}

    def _input(
        self,
        name: str,
        array: np.ndarray,
        wire: ModelWire,
        region: SharedRegion | None,
        offsets: dict[str, int],
    ) -> Any:
        request = self.client_module.InferInput(name, list(array.shape), wire.types[name])
        if region:
            request.set_shared_memory(region.name, array.nbytes, offset=offsets[name])
        elif self.protocol == "grpc":
            request.set_data_from_numpy(array)
        else:
            request.set_data_from_numpy(array, binary_data=True)
        return request

    def _output(
        self, name: str, region: SharedRegion | None, offsets: dict[str, int], sizes: dict[str, int]
    ) -> Any:
        if self.protocol == "grpc":
            output = self.client_module.InferRequestedOutput(name)
        else:
            output = self.client_module.InferRequestedOutput(name, binary_data=True)
        if region:
            output.set_shared_memory(region.name, sizes[name], offset=offsets[name])
        return output

    def _client(self) -> Any:
        client = self._local.__dict__.get("client")
        if client is None:
            if self.protocol == "grpc":
                client = self.client_module.InferenceServerClient(self.url)
            else:
                client = self.client_module.InferenceServerClient(
                    self.url, connection_timeout=self.timeout_s, network_timeout=self.timeout_s
                )
            self._local.client = client
        return client

    def model_wire(self) -> ModelWire:
        """What the served model takes and gives, from its metadata (read once per server)."""
        wire = self._wire
        if wire is None:
            options = {"as_json": True} if self.protocol == "grpc" else {}
            metadata = self._client().get_model_metadata(self.model, **options)
            wire = self._wire = ModelWire.from_metadata(metadata)
        return wire

    def _region(self, client: Any, size: int) -> SharedRegion | None:
        """This thread's shared region, ``size`` bytes or more and registered; None: the
        tensors go on the wire."""
        if not self.shared_memory:
            return None
        region: SharedRegion | None = self._local.__dict__.get("region")
        if region is None or region.size < size:
            region = self._local.region = SharedRegion(client, size)
        if region.registered_at != self._generation:
            try:
                region.register(self._generation)
            except self._server_error as exc:
                if exc.status() is None:  # no answer: the server is down, not unwilling
                    raise
                self.shared_memory = False
                log.warning(
                    "face server %s cannot map shared memory (%s): tensors go on the wire "
                    "(a container needs the host's /dev/shm: docker run --ipc=host)",
                    self.url,
                    exc,
                )
                return None
        return region

    def _retryable(self, exc: Exception) -> bool:
        """The server's error by its status (HTTP, or gRPC's code as HTTP's); without an
        answer, a refused, reset or timed-out connection is worth another try."""
        if isinstance(exc, self._server_error):
            status = str(exc.status() or "")
            code = GRPC_AS_HTTP.get(status) or (int(status) if status.isdigit() else None)
            return code is None or retryable_status(code)
        return isinstance(exc, OSError)


def _on_this_host(url: str) -> bool:
    host = urlsplit(url if "//" in url else f"//{url}").hostname or ""
    return host in LOOPBACK
