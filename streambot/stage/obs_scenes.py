"""What streambot drives in OBS, and making it: the scene and source names, their kinds and
layout, and the setup that creates what is missing (the user's own sources are never replaced).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from streambot.config import ObsConfig

State = Literal["idle", "talking", "showcase", "brb"]
STATES: tuple[str, ...] = ("idle", "talking", "showcase", "brb")

TEXT_KIND_LINUX = "text_ft2_source_v2"  # FreeType 2 text (Linux, macOS)
TEXT_KIND_WINDOWS = "text_gdiplus_v2"
IMAGE_KIND = "image_source"
MEDIA_KIND = "ffmpeg_source"


@dataclass(frozen=True)
class ObsScenes:
    """The names of the scenes and sources streambot drives (created by ``setup``); the
    defaults live in one place, ``ObsConfig``."""

    idle: str
    talking: str
    showcase: str
    brb: str
    caption: str
    product: str
    stream: str

    @classmethod
    def from_config(cls, cfg: ObsConfig | None = None) -> ObsScenes:
        cfg = cfg or ObsConfig()
        return cls(
            idle=cfg.scene_idle,
            talking=cfg.scene_talking,
            showcase=cfg.scene_showcase,
            brb=cfg.scene_brb,
            caption=cfg.caption_source,
            product=cfg.product_source,
            stream=cfg.media_source,
        )

    def scene_for(self, state: str) -> str:
        if state not in STATES:
            raise ValueError(f"unknown stage state {state!r}; expected one of {', '.join(STATES)}")
        return getattr(self, state)

    @property
    def all_scenes(self) -> tuple[str, ...]:
        return self.idle, self.talking, self.showcase, self.brb

    def layout(self) -> dict[str, tuple[str, ...]]:
        """Which scenes each source appears in, bottom layer first."""
        return {
            self.stream: (self.idle, self.talking, self.showcase),
            self.product: (self.showcase,),
            self.caption: (self.talking, self.showcase, self.brb),
        }


def text_kind_for(platform: str) -> str:
    """OBS's text source kind on the platform GetVersion reports (``windows``, ``ubuntu``, ...)."""
    return TEXT_KIND_WINDOWS if platform.lower().startswith("windows") else TEXT_KIND_LINUX


def media_settings(stream_url: str) -> dict[str, Any]:
    return {
        "is_local_file": False,
        "input": stream_url,
        "input_format": "mpegts",
        "buffering_mb": 1,
        "reconnect_delay_sec": 1,
        "hw_decode": False,
        "clear_on_media_end": False,
        "restart_on_activate": False,
    }


class ObsRequestFailed(Exception):
    """OBS answered a request with an error status."""

    def __init__(self, request_type: str, code: int, comment: str) -> None:
        super().__init__(f"{request_type} failed (code {code}): {comment}")
        self.request_type = request_type
        self.code = code
        self.comment = comment


@dataclass
class ObsSetupReport:
    created: list[str] = field(default_factory=list)
    existing: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors

    def lines(self) -> list[str]:
        return (
            [f"created  {item}" for item in self.created]
            + [f"updated  {item}" for item in self.updated]
            + [f"exists   {item}" for item in self.existing]
            + [f"ERROR    {item}" for item in self.errors]
        )


Request = Callable[..., Awaitable[dict]]  # (request type, data) -> OBS's answer


class SceneSetup:
    """Creates the scenes and sources streambot drives through ``request`` (the controller's:
    one at a time, off the loop)."""

    def __init__(self, request: Request, scenes: ObsScenes, platform: str) -> None:
        self.request, self.scenes, self.platform = request, scenes, platform

    async def check(self) -> tuple[list[tuple[str, bool, str]], dict[str, str]]:
        """Each scene and source as ``doctor`` shows it (name, ok, what), and the inputs OBS
        has with their kinds."""
        have_scenes, have_inputs = await self.scene_names(), await self.input_kinds()
        results = []
        for name in self.scenes.all_scenes:
            ok = name in have_scenes
            results.append((f"scene {name!r}", ok, "exists" if ok else "missing (run obs setup)"))
        for name, kind in self.kinds_wanted().items():
            have = have_inputs.get(name)
            if have is None:
                results.append((f"source {name!r}", False, "missing (run obs setup)"))
            elif have != kind:
                results.append((f"source {name!r}", False, f"kind is {have}, expected {kind}"))
            else:
                results.append((f"source {name!r}", True, kind))
        return results, have_inputs

    async def scene_names(self) -> set[str]:
        data = await self.request("GetSceneList")
        return {scene["sceneName"] for scene in data.get("scenes", [])}

    async def input_kinds(self) -> dict[str, str]:
        data = await self.request("GetInputList")
        return {item["inputName"]: item["inputKind"] for item in data.get("inputs", [])}

    def kinds_wanted(self) -> dict[str, str]:
        return {
            self.scenes.stream: MEDIA_KIND,
            self.scenes.product: IMAGE_KIND,
            self.scenes.caption: text_kind_for(self.platform),
        }

    async def run(
        self, report: ObsSetupReport, stream_url: str, product_image: str | None, caption: str
    ) -> None:
        """Create what is missing, check what is there, point the media source at
        ``stream_url``; each step is said in ``report``."""
        try:
            await self._make_scenes(report)
            have_inputs = await self.input_kinds()
        except ObsRequestFailed as e:
            report.errors.append(str(e))
            return
        kinds = self.kinds_wanted()
        settings: dict[str, dict[str, Any]] = {
            self.scenes.stream: media_settings(stream_url),
            self.scenes.product: {"file": product_image or ""},
            self.scenes.caption: {"text": caption},
        }
        for source, in_scenes in self.scenes.layout().items():
            # the stream's URL is ours to set; the product image only when one is given
            ours = source == self.scenes.stream or (
                source == self.scenes.product and product_image is not None
            )
            try:
                placed = await self._make_input(
                    report,
                    source,
                    kinds[source],
                    in_scenes[0],
                    settings[source],
                    have_inputs.get(source),
                    update=ours,
                )
                if placed is None:
                    continue
                for scene in in_scenes:
                    if scene not in placed:
                        await self._place(report, source, scene)
            except ObsRequestFailed as e:
                report.errors.append(f"source {source!r}: {e}")

    async def _make_scenes(self, report: ObsSetupReport) -> None:
        have_scenes = await self.scene_names()
        for name in self.scenes.all_scenes:
            if name in have_scenes:
                report.existing.append(f"scene {name!r}")
                continue
            await self.request("CreateScene", {"sceneName": name})
            report.created.append(f"scene {name!r}")

    async def _make_input(
        self,
        report: ObsSetupReport,
        source: str,
        kind: str,
        scene: str,
        settings: dict[str, Any],
        have_kind: str | None,
        update: bool,
    ) -> set[str] | None:
        """Create ``source`` in ``scene`` (its first), or check the one there and, when
        ``update``, set its settings; the scenes it was placed in, None when it is the wrong
        kind (said in the report: the user's own source is never replaced)."""
        if have_kind is None:
            await self.request(
                "CreateInput",
                {
                    "sceneName": scene,
                    "inputName": source,
                    "inputKind": kind,
                    "inputSettings": settings,
                    "sceneItemEnabled": True,
                },
            )
            report.created.append(f"source {source!r} ({kind}) in {scene!r}")
            return {scene}
        if have_kind != kind:
            report.errors.append(
                f"source {source!r} exists with kind {have_kind}, "
                f"expected {kind}: rename or delete it in OBS"
            )
            return None
        report.existing.append(f"source {source!r}")
        if update:
            await self.request("SetInputSettings", {"inputName": source, "inputSettings": settings})
            report.updated.append(f"source {source!r} settings")
        return set()

    async def _place(self, report: ObsSetupReport, source: str, scene: str) -> None:
        """Add ``source`` to ``scene`` unless it is there already."""
        items = await self.request("GetSceneItemList", {"sceneName": scene})
        if any(i.get("sourceName") == source for i in items.get("sceneItems", [])):
            return
        await self.request(
            "CreateSceneItem", {"sceneName": scene, "sourceName": source, "sceneItemEnabled": True}
        )
        report.created.append(f"source {source!r} in {scene!r}")
