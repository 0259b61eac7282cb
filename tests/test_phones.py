"""PocketSphinx phones (tasks/rows/phones.py): of a file, of a file in blocks, of live speech."""

import subprocess

import numpy as np
import pytest
import soundfile

from tasks.rows.phones import (
    PHONES,
    PhoneBlocks,
    PhoneStream,
    _spread,
    phone_features,
    phone_track,
    shares_of,
    word_phone_track,
)

SR = 16000


@pytest.fixture(scope="module")
def speech(tmp_path_factory) -> np.ndarray:
    """Eight seconds of espeak-ng speech at 16 kHz (the demo corpus's voices come from it too)."""
    wav = tmp_path_factory.mktemp("phones") / "speech.wav"
    text = "Peter picked a peck of pickled peppers. My father moved the boat over the wide open sea. " * 2
    subprocess.run(["espeak-ng", "-s", "150", "-w", str(wav), text], check=True, capture_output=True)
    samples, rate = soundfile.read(wav, dtype="float32")
    from scipy.signal import resample_poly

    return resample_poly(samples, SR, rate).astype(np.float32)[: 8 * SR]


def test_speech_has_phones_and_silence_has_none(speech):
    track = phone_track(speech, SR)
    assert len(track) == len(speech) * 100 // SR + 1
    spoken = track[track > 0]
    assert len(spoken) > 0.5 * len(track) and len(set(spoken.tolist())) >= 12
    assert {"P", "M", "AA"} & {PHONES[i] for i in spoken}
    assert not phone_track(np.zeros(2 * SR, np.float32), SR).any()


def test_live_phones_settle_to_the_file_s(speech):
    """Fed in 20 ms pieces, the phones 300 ms back (live.lookahead_ms's order) mostly agree with those of
    the whole file, and letting go of the past keeps the track short."""
    whole = phone_track(speech, SR)
    stream, agree = PhoneStream(SR), []
    for k in range(0, len(speech), 320):
        stream.add(speech[k : k + 320])
        now = (k + 320) // 160
        if now > 60 and now % 10 == 0:
            stream.features(np.zeros(1))
            agree.append(stream.track[now - 30 - stream.first] == whole[now - 30])
            stream.forget(now / 100 - 1.0)
    assert np.mean(agree) >= 0.7
    assert len(stream.track) <= 110 and stream.first > 600
    shares = stream.features(np.array([len(speech) / SR - 0.5]))
    assert shares.shape == (1, len(PHONES)) and np.isclose(shares.sum(), 1)


def test_live_phones_restart_their_utterance_without_losing_time(monkeypatch, speech):
    monkeypatch.setattr(PhoneStream, "RESTART_S", 1.0)
    stream = PhoneStream(SR)
    for k in range(0, 4 * SR + 4000, 500):  # pieces that are not whole steps
        stream.add(speech[k : k + 500])
    stream.features(np.zeros(1))
    assert stream.start == 400 and len(stream.track) == 425
    assert (stream.track > 0).mean() > 0.4
    np.testing.assert_allclose(phone_features(stream.track, np.array([1.5])).sum(), 1)


def test_words_are_decoded_into_their_phones(speech):
    """The words PocketSphinx hears, aligned to their phones: a track of the same steps. espeak's voice is
    not one its English model knows well (it hears "the talk on the mood but that was a white guy"), so
    only some of the steps are words; real voices are measured in evals/speech_tries.py."""
    track = word_phone_track(speech, SR)
    assert track.shape == phone_track(speech, SR).shape and track.dtype == np.int8
    spoken = {PHONES[i] for i in track[track > 0]}
    assert (track > 0).mean() > 0.25 and len(spoken) >= 8
    assert {"P", "M", "AA", "B"} & spoken
    assert not word_phone_track(np.zeros(2 * SR, np.float32), SR).any()
    assert not word_phone_track(np.zeros(0, np.float32), SR).any()


def test_words_whose_alignment_fails_share_their_steps_among_their_phones():
    """Where the second pass finds no path (noise the first heard as words), each word's dictionary
    phones share its steps evenly; fillers and silence are no phones."""
    words = [("<s>", 0, 5), ("hello", 5, 13), ("<sil>", 13, 20), ("read(2)", 20, 26)]
    dictionary = {"hello": "HH AH L OW", "read(2)": "R EH D"}
    assert _spread(words, dictionary.get) == [("HH", 5, 7), ("AH", 7, 9), ("L", 9, 11), ("OW", 11, 13),
                                              ("R", 20, 22), ("EH", 22, 24), ("D", 24, 26)]


def test_blocks_of_both_kinds_are_what_each_file_decode_gives(speech):
    """A stream's blocks (PhoneBlocks) with the words too: the phone loop's shares, then the words', as
    a whole-file decode of each gives (shares_of)."""
    speech = speech[: 3 * SR]  # three seconds: the words' decoder is the cost (~1 s a second of speech)
    blocks = PhoneBlocks(SR, (False, True))
    for k in range(0, len(speech), 4000):
        blocks.add(speech[k : k + 4000])
    blocks.finish()
    times = np.arange(0, 2.9, 1 / 30)
    np.testing.assert_array_equal(blocks.features(times), shares_of(speech, SR, times, (False, True)))
    np.testing.assert_array_equal(shares_of(speech, SR, times, (True,)),
                                  phone_features(word_phone_track(speech, SR), times))
