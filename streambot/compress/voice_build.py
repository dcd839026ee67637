"""``build_engines.py --only voice``: each configured Piper voice's HiFi-GAN decoder pruned,
distilled and exported, with its fidelity measured in the same run.

For each voice (``[voice.piper] model`` and every ``voices`` entry): the decoder is rebuilt in
PyTorch from the voice's ONNX, its channels pruned by ``--prune`` or ``[voice.piper] prune``
(compress/prune_voice.py), and the student distilled against the voice's own decoder on
latents the voice's encoder makes from the stream's sentences (compress/voice_data.py) for
``--distil-minutes``. On held-out sentences the build measures the multi-resolution STFT
distance and the mel-cepstral distortion, student vs teacher, before and after distillation
and for the exported file itself, and its decode speed against the unpruned decoder, both in
ONNX Runtime. It writes the ONNX engine and the state dict + widths, each recorded in the
manifest; an engine above the ``--max-voice-mcd`` floor is recorded but not a default.
"""

from __future__ import annotations

import json
import logging
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from streambot.compress.common import (
    BUILD_LIBRARIES,
    BuildError,
    BuildOptions,
    Row,
    catalog_of,
    distil_ticker,
    distillation_record,
    plan_outputs,
    progress,
)
from streambot.config import Config
from streambot.runtime.manifest import Artifact, Device, Manifest, sha256_file, sha256_json
from streambot.runtime.select import library_versions

log = logging.getLogger(__name__)
KIND = "voice"
TRAIN_LATENT_FRAMES = 32  # 32 x 256 samples: 0.37 s windows at 22 050 Hz


@dataclass
class VoiceBuild:
    """One voice to build, resolved from the config (errors name the key)."""

    key: str  # the config key it came from, for messages
    model: Path
    lang: str
    ratio: float
    inputs: dict[str, str]

    @property
    def files(self) -> dict[str, str]:
        stem = f"voice-{self.model.stem}-p{round(self.ratio * 100):02d}"
        return {"onnx": f"{stem}.onnx", "torch": f"{stem}.pt"}


def resolve_voices(config: Config, options: BuildOptions) -> list[VoiceBuild]:
    cfg = config.voice.piper
    wanted = ([("voice.piper.model", "", cfg.model)] if cfg.model else []) + [
        (f"voice.piper.voices.{lang}", lang, path) for lang, path in cfg.voices.items()
    ]
    if not wanted:
        raise BuildError("voice.piper.model: no Piper voice is configured")
    ratio = options.prune_or(cfg.prune)
    jobs = []
    for key, lang, path in wanted:
        model = Path(path)
        if not model.is_file():
            raise BuildError(f"{key}: {model} does not exist")
        settings = {
            "prune": ratio,
            "distil_minutes": options.face_voice_distil_minutes,
            "sentences": "catalog+persona",
            "latent_frames": TRAIN_LATENT_FRAMES,
        }
        inputs = {"voice": sha256_file(model), "build settings": sha256_json(settings)}
        jobs.append(VoiceBuild(key, model, lang or _voice_language(model, key), ratio, inputs))
    return jobs


def _voice_language(model: Path, key: str) -> str:
    config = Path(f"{model}.json")
    try:
        family = json.loads(config.read_text(encoding="utf-8"))["language"]["family"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise BuildError(f"{key}: {config} does not say the voice's language ({exc})") from exc
    return "zh" if family in ("zh", "cmn") else family


def plan_voice(job: VoiceBuild, options: BuildOptions, manifest: Manifest) -> list[Row]:
    wanted = {output: name for output, name in job.files.items() if output in options.backends}
    return plan_outputs(KIND, wanted, job.inputs, options, manifest)


def build_voice_engine(
    config: Config, job: VoiceBuild, options: BuildOptions, manifest: Manifest
) -> list[Row]:
    try:
        import torch

        from streambot.compress.distill_voice import fidelity_figures
        from streambot.compress.prune_voice import prune_hifigan
        from streambot.compress.voice_data import held_out, voice_sentences
        from streambot.voice.piper import PiperSettings
        from streambot.voice.piper_split import SplitPiperVoice
    except ImportError as exc:
        raise BuildError(f"{exc}: pip install torch 'streambot[neural]'") from exc
    sentences = voice_sentences(catalog_of(config), job.lang, config.persona.name)
    train_text, held_text = held_out(sentences)
    with tempfile.TemporaryDirectory() as work:
        # noise off: the same text gives the same latent, so the figures repeat run to run
        voice = SplitPiperVoice(
            job.model, work_dir=work, settings=PiperSettings(noise_scale=0.0, noise_w=0.0)
        )
        train = _latents(voice, train_text)
        held = _latents(voice, held_text)
        teacher = voice.hifigan
        log.info(
            "voice %s: %d training sentences, %d held out (%s)",
            job.model.name,
            len(train_text),
            len(held_text),
            job.lang,
        )
        pruned = prune_hifigan(teacher, job.ratio)
        student = pruned.model
        rate = voice.sample_rate
        with torch.no_grad():
            reference = [teacher(z).numpy().reshape(-1) for z in held]
            before = fidelity_figures([student(z).numpy() for z in held], reference, rate)
        report = _distil(teacher, student, train, rate, job, options)
        with torch.no_grad():
            after = fidelity_figures([student(z).numpy() for z in held], reference, rate)
        heard = _intelligibility(voice, teacher, student, job.lang)
        check = HeldOut([z.numpy() for z in held], reference, rate, voice.hop)
        outputs = _write(teacher, pruned, job, check, options, Path(work))
    shared = {
        "before_distillation": before,
        "after_distillation": after,
        "distillation": distillation_record(report),
        "teacher": f"the voice's own decoder ({job.model.name}, its trained weights)",
        "held_out_sentences": len(held_text),
        "max_mcd_db": options.max_voice_mcd_db,
        "intelligibility": heard,
        "max_wer_rise": options.max_voice_wer_rise,
    }
    versions = library_versions(BUILD_LIBRARIES)
    return [
        _record(job, options, manifest, pruned, shared, versions, *output) for output in outputs
    ]


def _record(
    job: VoiceBuild,
    options: BuildOptions,
    manifest: Manifest,
    pruned: Any,
    shared: dict[str, Any],
    versions: dict[str, str],
    backend: str,
    path: Path,
    own: dict[str, Any] | None,
) -> Row:
    """One written decoder in the manifest (a default when it is close enough to the voice's
    own and as easy to understand), and its row."""
    before, after = shared["before_distillation"], shared["after_distillation"]
    heard = shared["intelligibility"]
    figures = own or after
    rise = heard["wer_rise"] if heard.get("wer_rise") is not None else None
    too_far = figures["mcd_db"] > options.max_voice_mcd_db
    less_clear = rise is not None and rise > options.max_voice_wer_rise
    pruning = {
        "ratio": job.ratio,
        "widths": pruned.model.config.to_dict(),
        "params_before": pruned.params_before,
        "params_after": pruned.params_after,
    }
    manifest.put(
        Artifact(
            KIND,
            path.name,
            sha256_file(path),
            backend,
            "fp32",
            dict(job.inputs),
            Device(),
            versions,
            pruning,
            {**shared, "this_file": own} if own else shared,
            default=not too_far and not less_clear,
            source=job.model.name,
        )
    )
    detail = _detail(before, figures, pruned.params_after, own, heard)
    if too_far:
        detail += (
            f"; not a default: MCD {figures['mcd_db']:.2f} dB > floor {options.max_voice_mcd_db:g}"
        )
    elif less_clear:
        detail += (
            f"; not a default: {rise:.0%} more words misheard than with the voice's "
            f"own decoder (--max-voice-wer-rise {options.max_voice_wer_rise:g}); "
            "more --distil-minutes brings it back"
        )
    return Row(KIND, path.name, "built", detail)


def _detail(
    before: dict[str, Any],
    figures: dict[str, Any],
    params: int,
    own: dict[str, Any] | None,
    heard: dict[str, Any],
) -> str:
    """What a decoder's row says: its distance to the voice's own, size, speed and clarity."""
    detail = (
        f"MCD {before['mcd_db']:.2f} -> {figures['mcd_db']:.2f} dB, STFT distance "
        f"{before['stft_distance']:.2f} -> {figures['stft_distance']:.2f}, "
        f"{params / 1e6:.2f}M params"
    )
    if own and "speed_up" in own:
        detail += f", {own['speed_up']:.2f}x the unpruned decoder (ONNX Runtime)"
    if heard.get("wer_rise") is not None:
        detail += (
            f", recogniser word errors {heard['wer_teacher']:.0%} -> {heard['wer_student']:.0%}"
        )
    return detail


def _intelligibility(voice, teacher, student, lang: str) -> dict:
    """Word error rates of a trained recogniser on everyday sentences spoken by the voice's
    own decoder and by the pruned one (English voices, with pocketsphinx installed)."""
    import torch

    from streambot.compress.intelligibility import (
        EVERYDAY_EN,
        IntelligibilityError,
        Transcriber,
        word_error_rate,
    )

    if lang != "en":
        return {"measured": False, "why": f"no recogniser for {lang} here"}
    try:
        asr = Transcriber()
    except IntelligibilityError as exc:
        log.warning("voice: intelligibility not measured: %s", exc)
        return {"measured": False, "why": str(exc)}
    rates = {}
    for name, decoder in (("teacher", teacher), ("student", student)):
        heard = []
        for sentence in EVERYDAY_EN:
            with torch.no_grad():
                audio = [decoder(z).numpy().reshape(-1) for z in _latents(voice, [sentence])]
            heard.append(" ".join(asr.transcribe(a, voice.sample_rate) for a in audio))
        rates[name] = word_error_rate(EVERYDAY_EN, heard)
    return {
        "measured": True,
        "recogniser": "pocketsphinx en-us (trained, packaged)",
        "sentences": len(EVERYDAY_EN),
        "wer_teacher": round(rates["teacher"], 4),
        "wer_student": round(rates["student"], 4),
        "wer_rise": round(rates["student"] - rates["teacher"], 4),
    }


def _latents(voice, sentences: list[str]) -> list:
    import torch

    return [
        torch.from_numpy(voice.latent(voice.phonemes_to_ids(phonemes)))
        for sentence in sentences
        for phonemes in voice.phonemize(sentence)
    ]


def _distil(teacher, student, train, rate: int, job: VoiceBuild, options: BuildOptions):
    from streambot.compress.distill_voice import distil_decoder, latent_segments

    budget = options.face_voice_distil_minutes * 60.0
    resume = options.out / f".{job.files['torch']}.{job.inputs['voice'][:12]}.distil"
    with progress() as bar:
        tick = distil_ticker(bar, f"distilling {job.model.name}", budget, every=100)
        return distil_decoder(
            teacher,
            student,
            latent_segments(train, TRAIN_LATENT_FRAMES),
            rate,
            budget_s=budget,
            lr=1e-3,
            resume_path=resume,
            device=options.device,
            on_step=tick,
        )


@dataclass
class HeldOut:
    """The held-out latents and the teacher's audio of each, for a file's own figures."""

    latents: list
    reference: list
    rate: int
    hop: int  # samples per latent frame

    @property
    def seconds(self) -> float:
        return sum(z.shape[-1] for z in self.latents) * self.hop / self.rate


def _write(teacher, pruned, job: VoiceBuild, held: HeldOut, options: BuildOptions, work: Path):
    """The files asked for: (backend, path, its own figures or None for the torch weights)."""
    from streambot.compress.distill_voice import fidelity_figures
    from streambot.compress.prune_voice import save_pruned_hifigan
    from streambot.runtime.export import export_hifigan_onnx
    from streambot.voice.decoder_engine import OnnxDecoder

    options.out.mkdir(parents=True, exist_ok=True)
    written = []
    if "torch" in options.backends:
        path = save_pruned_hifigan(pruned, options.out / job.files["torch"])
        written.append(("torch", path, None))
    if "onnx" in options.backends:
        path = export_hifigan_onnx(pruned.model, options.out / job.files["onnx"])
        engine = OnnxDecoder(path)
        latents = held.latents
        own = fidelity_figures([engine(z) for z in latents], held.reference, held.rate)
        unpruned = OnnxDecoder(export_hifigan_onnx(teacher, work / "teacher.onnx"))
        teacher_s, student_s = _decode_seconds(unpruned, latents), _decode_seconds(engine, latents)
        own |= {
            "decode_rtf": round(student_s / held.seconds, 4),
            "teacher_decode_rtf": round(teacher_s / held.seconds, 4),
            "speed_up": round(teacher_s / student_s, 2),
        }
        written.append(("onnxruntime", path, own))
    return written


def _decode_seconds(decode, latents, repeats: int = 5) -> float:
    """Median seconds to decode every latent once (after one warm-up pass)."""
    for z in latents:
        decode(z)
    runs = []
    for _ in range(repeats):
        started = time.perf_counter()
        for z in latents:
            decode(z)
        runs.append(time.perf_counter() - started)
    return statistics.median(runs)
