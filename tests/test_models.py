"""The datasets over the frame table and the two networks: shapes, splits, overfitting, checkpoints."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from helpers import synthetic_shards
from test_composite import MEAN_FACE

from models.artifacts import CganArtifact, LstmArtifact, load_checkpoint, save_checkpoint
from models.errors import CheckpointError, RenderError
from models.networks.cgan import Discriminator, Frames, Generator, generate_faces, load_generator
from models.networks.lstm import AudioToLips, linear_lips, load_lstm, predict_lips, window_index
from models.networks.reference_warp import warp_reference
from models.networks.unet import UNetGenerator, hard_mask, images
from models.records import LipsStats, References
from models.rendering.layouts import check_output
from models.training.data import (
    FacesWithLips,
    FramesWithReferences,
    LipsWindows,
    audio_stats,
    lips_stats,
    load_corpus,
    video_references,
)
from models.training.linear import fit_linear
from models.training.lip_metrics import lip_metrics
from models.training.split import split_corpus, target_video
from models.training.train_lstm import lips_data
from tasks.config.params import FACE_SIZE, OUTPUTS, Output, Params, RenderParams
from tasks.config.params_loader import ParamsError, load_params


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    return synthetic_shards(tmp_path_factory.mktemp("shards"), videos=3, frames=120)


@pytest.fixture
def params(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("{}\n")
    return lambda **overrides: load_params(path, overrides)


def test_corpus_reads_the_frame_table(shards):
    corpus = load_corpus(shards, faces=True)
    assert [v.video_id for v in corpus.videos] == ["synthetic_0", "synthetic_1", "synthetic_2"]
    video = corpus.videos[0]
    assert video.audio.shape == (120, 28) and video.lips.shape == (120, 16)
    assert not video.face_found[24] and np.isnan(video.lips[24]).all()
    assert len(video.faces) == 120
    assert corpus.meta["face_size"] == 128 and len(corpus.meta["lip_indices"]) == 8
    assert corpus.fingerprint() == load_corpus(shards).fingerprint()


def test_split_by_video_keeps_the_target_in_train(shards, params):
    corpus = load_corpus(shards)
    split = split_corpus(corpus, params(**{"split.by": "auto"}))
    assert split.by == "video" and len(split.val_videos()) == 1
    assert target_video(corpus, "") not in split.val_videos()
    for v in corpus.videos:
        assert not (split.train[v.video_id] & split.val[v.video_id]).any()
    again = split_corpus(corpus, params(**{"split.by": "video"}))
    assert again.val_videos() == split.val_videos()


def test_split_by_time_leaves_a_gap_wider_than_a_window(shards, params):
    corpus = load_corpus(shards)
    by_time = {"split.by": "time", "split.val_fraction": 0.25, "lstm.context": 3}
    split = split_corpus(corpus, params(**by_time))
    for v in corpus.videos:
        train, val = np.flatnonzero(split.train[v.video_id]), np.flatnonzero(split.val[v.video_id])
        assert val.min() == 90 and val.max() == 119
        assert val.min() - train.max() >= 2 * 3 + 1
        # no window of a train frame reaches a window of a val frame
        assert window_index(len(v), 3)[train].max() < window_index(len(v), 3)[val].min()


@pytest.fixture(scope="module")
def six_videos(tmp_path_factory):
    return synthetic_shards(tmp_path_factory.mktemp("six"), videos=6, frames=40)


@pytest.mark.parametrize("share", [0.2, 0.4, 0.6])
def test_split_by_speaker_never_puts_one_person_on_both_sides(six_videos, params, share):
    corpus = load_corpus(six_videos)
    people = {"synthetic_0": "ann", "synthetic_3": "ann", "synthetic_1": "bob", "synthetic_4": "bob"}
    named = {"split.by": "speaker", "split.speakers": people}
    for overrides in ({"split.val_fraction": share}, {"split.held_out": ["bob"]},
                      {"split.held_out": ["ann", "synthetic_5"]}):
        split = split_corpus(corpus, params(**named, **overrides))
        assert split.by == "speaker" and split.val_videos()
        sides = {}
        for v in corpus.videos:
            train, val = split.train[v.video_id], split.val[v.video_id]
            assert not (train & val).any() and (train.all() or val.all())
            sides.setdefault(people.get(v.video_id, v.video_id), set()).add(bool(val.all()))
        assert all(len(side) == 1 for side in sides.values()), sides  # each person wholly on one side
        assert any(side == {False} for side in sides.values())  # someone is left to train on
        if "split.held_out" in overrides:
            assert {p for p, side in sides.items() if side == {True}} == set(overrides["split.held_out"])
        assert set(split.held_out()) == set(split.val_videos())
        assert target_video(corpus, "", split.held_out()) not in split.val_videos()


def test_split_by_speaker_refuses_what_cannot_be_held_out(six_videos, params):
    corpus = load_corpus(six_videos)
    with pytest.raises(ValueError, match="no video of carol"):
        split_corpus(corpus, params(**{"split.by": "speaker", "split.held_out": ["carol"]}))
    everyone = [f"synthetic_{i}" for i in range(6)]
    with pytest.raises(ValueError, match="every speaker"):
        split_corpus(corpus, params(**{"split.by": "speaker", "split.held_out": everyone}))
    with pytest.raises(ValueError, match="is held out"):
        target_video(corpus, "synthetic_2", frozenset({"synthetic_2"}))
    with pytest.raises(ParamsError, match="split.by: speaker"):
        params(**{"split.by": "video", "split.held_out": ["synthetic_1"]})


def test_lstm_dataset_windows_skip_faceless_targets_but_keep_their_audio(shards, params):
    corpus = load_corpus(shards)
    split = split_corpus(corpus, params(**{"split.by": "time"}))
    stats = (*audio_stats(corpus, split.train), *lips_stats(corpus, split.train))
    dataset = LipsWindows(corpus, split.train, 2, *stats)
    expected = sum(int((split.train[v.video_id] & v.face_found).sum()) for v in corpus.videos)
    assert len(dataset) == expected
    audio, lips = dataset[torch.arange(4)]
    assert audio.shape == (4, 5, 28) and lips.shape == (4, 16)
    # the first frame's window is edge-padded: its two left neighbours are copies of it
    assert torch.equal(audio[0, 0], audio[0, 2]) and torch.equal(audio[0, 1], audio[0, 2])
    # frame 24 has no face: not a target, yet frame 23's window holds its audio
    first = corpus.videos[0]
    normalised = (first.audio[24] - stats[0]) / stats[1]
    assert torch.allclose(dataset[23][0][3], torch.from_numpy(normalised))
    # z-scored on these very rows: mean 0, std 1 (or 0 where a synthetic point never moves)
    assert dataset.lips.mean(0).abs().max() < 1e-4
    std = dataset.lips.std(0)
    assert (((std - 1).abs() < 0.02) | (std < 1e-3)).all()


def test_gan_dataset_decodes_faces_per_item(shards, params):
    corpus = load_corpus(shards, faces=True)
    split = split_corpus(corpus, params())
    dataset = FacesWithLips(corpus, split.train, *lips_stats(corpus, split.train))
    face, lips = dataset[0]
    assert face.shape == (3, 128, 128) and face.dtype == torch.float32
    assert -1.0 <= float(face.min()) and float(face.max()) <= 1.0 and lips.shape == (16,)
    assert isinstance(dataset.faces[0].as_py(), bytes)


def test_frame_dataset_gives_the_crop_its_mask_a_far_reference_and_mouth_weights(shards, params):
    corpus = load_corpus(shards, faces=True)
    split = split_corpus(corpus, params(**{"split.by": "time"}))
    banks = video_references(corpus, split.train, 8)
    for video in corpus.videos:  # from the train frames with a face, spread over the opening
        frames = banks[video.video_id].frames
        assert len(frames) == 8 and split.train[video.video_id][frames].all()
        assert video.face_found[frames].all()
    dataset = FramesWithReferences(corpus, split.train, *lips_stats(corpus, split.train), banks, 4.0)
    real, mask, reference, lips, weights = dataset[10]
    assert real.shape == reference.shape == (3, 128, 128) and mask.shape == weights.shape == (1, 128, 128)
    assert set(mask.unique().tolist()) == {0.0, 1.0} and lips.shape == (16,)
    assert torch.equal(weights > 0, mask > 0) and weights.max() > 4
    # every item's reference is its video's bank crop with the nearest lips, 15 frames away at least
    first = corpus.videos[0]
    targets = np.flatnonzero(split.train[first.video_id] & first.face_found)
    bank = banks[first.video_id]
    chosen = bank.frames[dataset.references[: len(targets)]]
    assert (np.abs(chosen - targets) >= 15).all()
    picked = dataset.references[10]
    assert torch.equal(reference, images(bank.crops[picked][None])[0])
    # cgan.warp_references: the same crop, warped onto the frame's pose and its lips, item by item
    stats = lips_stats(corpus, split.train)
    warping = FramesWithReferences(corpus, split.train, *stats, banks, 4.0, warp=True)
    warped = warp_reference(bank.crops[picked], bank.landmarks[picked], first.landmarks[targets[10]],
                            first.lips[targets[10]], list(corpus.meta["lip_indices"]))
    assert torch.equal(warping[10][2], images(warped[None])[0]) and not torch.equal(warping[10][2], reference)
    assert warping._reference(10) is warping._reference(10)  # warped once, then kept


def test_lip_metrics():
    rng = np.random.default_rng(0)
    true = rng.uniform(0.3, 0.7, size=(50, 16)).astype(np.float32)
    perfect = lip_metrics(true, true, 128, [48, 50, 52, 54, 56, 58, 62, 66])
    assert perfect["lmd_px"] == 0 and perfect["mouth_open_r"] == pytest.approx(1.0)
    shifted = lip_metrics(true + np.float32(1 / 128), true, 128, [48, 50, 52, 54, 56, 58, 62, 66])
    assert shifted["lmd_px"] == pytest.approx(np.sqrt(2), rel=1e-3)


@pytest.mark.parametrize("bidirectional,layers", [(True, 1), (False, 1), (True, 2)])
def test_lstm_shapes(bidirectional, layers):
    model = AudioToLips(features=28, hidden=16, layers=layers, bidirectional=bidirectional, dropout=0.3,
                        fc_hidden=8)
    assert model(torch.randn(5, 11, 28)).shape == (5, 16)


def test_gan_shapes():
    netG, netD = Generator(noise_dim=50, ngf=4), Discriminator(ndf=4)
    image = netG(torch.randn(2, 50), torch.randn(2, 16))
    assert image.shape == (2, 3, 128, 128)
    assert float(image.detach().abs().max()) <= 1.0
    assert netD(image, torch.randn(2, 16)).shape == (2,)


def _fit(model_loss, parameters, steps, lr):
    optimizer = torch.optim.Adam(parameters, lr=lr)
    first = None
    for _ in range(steps):
        loss = model_loss()
        first = first if first is not None else loss.item()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return first, model_loss().item()


def test_lstm_overfits_a_tiny_batch():
    torch.manual_seed(0)
    model = AudioToLips(features=28, hidden=32, fc_hidden=32)
    audio, lips = torch.randn(16, 7, 28), torch.randn(16, 16)
    first, last = _fit(lambda: F.mse_loss(model(audio), lips), model.parameters(), 150, 3e-3)
    assert last < first / 10


def test_generator_overfits_a_tiny_batch():
    torch.manual_seed(0)
    netG = Generator(noise_dim=8, ngf=8)
    noise, lips = torch.randn(4, 8), torch.randn(4, 16)
    # blocky targets a small generator can reach
    faces = F.interpolate(torch.rand(4, 3, 4, 4) * 1.6 - 0.8, size=128, mode="nearest")
    first, last = _fit(lambda: F.mse_loss(netG(noise, lips), faces), netG.parameters(), 100, 2e-3)
    assert last < first / 10


def test_discriminator_overfits_a_tiny_batch():
    torch.manual_seed(0)
    netD = Discriminator(ndf=4)
    images, lips = torch.rand(8, 3, 128, 128) * 2 - 1, torch.randn(8, 16)
    labels = torch.tensor([1.0, 0.0] * 4)
    first, last = _fit(lambda: F.binary_cross_entropy_with_logits(netD(images, lips), labels),
                       netD.parameters(), 40, 2e-3)
    assert last < first / 10


MADE = {"epoch": 1, "lip_indices": [48, 50, 52, 54, 56, 58, 62, 66], "fps": 30.0, "split_by": "time",
        "val_videos": ["a"], "params": {}, "params_digest": "d", "data_fingerprint": "f"}


def tiny_cgan_artifact(netG: Generator) -> CganArtifact:
    stats = {"a": LipsStats(np.zeros(16), np.eye(16), 3)}
    return CganArtifact(state_dict=netG.state_dict(), hparams={"noise_dim": 8, "lips": 16, "ngf": 4},
                        noise=np.random.default_rng(0).normal(size=8).astype(np.float32),
                        lips_mean=np.zeros(16, np.float32), lips_std=np.ones(16, np.float32),
                        lips_stats=stats, target_video="a", face_size=128, **MADE)


def test_artifacts_round_trip_with_weights_only(tmp_path):
    model = AudioToLips(features=28, hidden=8, fc_hidden=8).eval()
    LstmArtifact(state_dict=model.state_dict(), hparams={"features": 28, "hidden": 8, "fc_hidden": 8},
                 context=2, audio_mean=np.zeros(28, np.float32), audio_std=np.ones(28, np.float32),
                 lips_mean=np.full(16, 0.5, np.float32), lips_std=np.full(16, 0.1, np.float32), face_size=128,
                 feature_layout=[], val_loss=0.5, **MADE).save(tmp_path / "lstm.pt")
    assert not list(tmp_path.glob(".*")), "no temporary file left behind"
    saved = torch.load(tmp_path / "lstm.pt", weights_only=True)
    assert isinstance(saved["audio_mean"], torch.Tensor)
    assert saved["split"] == {"by": "time", "val_videos": ["a"]}
    loaded, artifact = load_lstm(tmp_path / "lstm.pt")
    assert isinstance(artifact.lips_std, np.ndarray) and artifact.lips_std.dtype == np.float32
    assert artifact.val_videos == ["a"] and artifact.context == 2
    audio = np.random.default_rng(0).normal(size=(10, 28)).astype(np.float32)
    lips = predict_lips(loaded, artifact, audio)
    assert lips.shape == (10, 16)
    windows = torch.from_numpy(audio[window_index(10, 2)])
    with torch.no_grad():
        assert np.allclose(lips, model(windows).numpy() * 0.1 + 0.5, atol=1e-6)

    netG = Generator(noise_dim=8, ngf=4).eval()
    tiny_cgan_artifact(netG).save(tmp_path / "cgan.pt")
    loaded_g, artifact = load_generator(tmp_path / "cgan.pt")
    assert artifact.condition == "noise" and artifact.noise.dtype == np.float32
    stats = artifact.lips_stats["a"]
    assert stats.mean.dtype == stats.cov.dtype == np.float64 and stats.frames == 3
    faces = generate_faces(loaded_g, artifact, np.zeros((3, 16), np.float32))
    assert faces.shape == (3, 128, 128, 3) and faces.dtype == np.uint8
    assert load_checkpoint(tmp_path / "missing.pt") is None


def test_artifacts_of_the_format_before_load_and_others_fail_in_one_line(tmp_path):
    netG = Generator(noise_dim=8, ngf=4).eval()
    old = tiny_cgan_artifact(netG).to_disk()
    del old["format"], old["condition"]  # what train_cgan wrote before format 2
    old["lips_stats"] = {"a": {"mean": torch.zeros(16), "cov": torch.eye(16), "frames": 3}}  # float32 then
    save_checkpoint(old, tmp_path / "old.pt")
    _, artifact = load_generator(tmp_path / "old.pt")
    assert artifact.condition == "noise" and artifact.lips_stats["a"].cov.dtype == np.float64

    del old["lips_stats"]
    save_checkpoint(old, tmp_path / "older.pt")
    with pytest.raises(CheckpointError) as failed:
        load_generator(tmp_path / "older.pt")
    message = str(failed.value)
    assert "\n" not in message and str(tmp_path / "older.pt") in message and "lips_stats" in message
    assert "dvc repro train_cgan" in message

    other = tiny_cgan_artifact(Generator(noise_dim=8, ngf=8))
    other.hparams = {"noise_dim": 8, "lips": 16, "ngf": 4}  # weights of another width
    other.save(tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match=r"other\.pt: its weights do not fit Generator.*train_cgan"):
        load_generator(tmp_path / "other.pt")


def test_face_size_is_one_the_generators_make(params):
    assert params().preprocess.face_size == FACE_SIZE and params().cgan.condition == "frame"
    assert params(**{"preprocess.face_size": 256}).preprocess.face_size == 256  # the U-Net paints 256 too
    with pytest.raises(ParamsError, match=r"preprocess\.face_size.*must be one of \(128, 256\)"):
        params(**{"preprocess.face_size": 192})
    with pytest.raises(ParamsError) as failed:
        params(**{"preprocess.face_size": 256, "cgan.condition": "noise"})
    assert str(failed.value).endswith(
        "preprocess.face_size must be 128 with cgan.condition: noise (the noise generator makes 128x128 "
        "faces only)"
    )


def test_a_frame_artifact_round_trips_with_its_references_and_paints_only_the_mask(tmp_path):
    torch.manual_seed(0)
    netG = UNetGenerator(**UNetGenerator.hparams(128, 4)).eval()
    torch.nn.init.normal_(netG.head.weight, 0.0, 0.1)  # as if trained: a residual one starts at zero
    rng = np.random.default_rng(0)
    bank = References(rng.integers(0, 256, (3, 128, 128, 3), dtype=np.uint8),
                      rng.uniform(0.3, 0.7, (3, 16)).astype(np.float32), [5, 40, 90])
    artifact = tiny_cgan_artifact(netG)
    artifact.hparams, artifact.condition, artifact.noise = UNetGenerator.hparams(128, 4), "frame", None
    artifact.references = {"a": bank}
    artifact.save(tmp_path / "cgan.pt")
    generator, loaded = load_generator(tmp_path / "cgan.pt")
    assert isinstance(generator, UNetGenerator) and loaded.condition == "frame" and loaded.noise is None
    saved = loaded.references["a"]
    assert saved.crops.dtype == np.uint8 and saved.frames.dtype == np.int64
    assert np.array_equal(saved.crops, bank.crops) and np.array_equal(saved.lips, bank.lips)
    assert saved.frames.tolist() == [5, 40, 90]

    assert saved.landmarks is None and not loaded.warps_references  # a bank saved without its points
    lips = bank.lips[[2, 0]] + 0.001
    with pytest.raises(ValueError, match="pass `frames`"):
        generate_faces(generator, loaded, lips)
    crops = rng.integers(0, 256, (2, 128, 128, 3), dtype=np.uint8)
    landmarks = np.stack([MEAN_FACE, np.full((68, 2), np.nan, np.float32)])  # the second: no face
    frames = Frames.of(crops, landmarks, lips, saved, loaded)
    assert np.array_equal(frames.references, bank.crops[[2, 0]])  # the nearest lips' crops
    faces = generate_faces(generator, loaded, lips, frames=frames)
    mask = hard_mask(MEAN_FACE, 128) > 0
    assert np.array_equal(faces[0][~mask], crops[0][~mask]) and not np.array_equal(faces[0], crops[0])
    assert np.array_equal(faces[1], crops[1])  # nothing painted without a face

    # trained on warped references: its bank keeps their points, and it is given them warped
    artifact.references = {"a": References(bank.crops, bank.lips, bank.frames, np.stack([MEAN_FACE] * 3))}
    artifact.warps_references = True
    artifact.save(tmp_path / "warps.pt")
    warps = load_generator(tmp_path / "warps.pt")[1]
    assert warps.warps_references
    assert np.array_equal(warps.references["a"].landmarks, np.stack([MEAN_FACE] * 3))
    warped = Frames.of(crops, landmarks, lips, warps.references["a"], warps)
    assert not np.array_equal(warped.references[0], bank.crops[2])  # bent onto the lips asked for
    assert np.array_equal(warped.references[1], bank.crops[0])  # no face to bend it onto


def test_render_outputs_are_named_once_and_checked_by_one_function():
    """tasks/config/params.py names the outputs; params.yaml and check_output accept exactly those."""
    assert RenderParams.model_fields["output"].annotation is Output
    assert [check_output(name) for name in OUTPUTS] == list(OUTPUTS)
    with pytest.raises(RenderError, match="'movie': not one of full, panel, face, face_panel"):
        check_output("movie")


def test_params_defaults_are_valid():
    params = Params()
    assert params.cgan.finetune_epochs <= params.cgan.epochs
    assert load_params("params.yaml").lstm.context >= 0


def test_split_by_time_within_the_speaker_split_measures_a_trained_persons_later_speech(six_videos, params):
    corpus = load_corpus(six_videos)
    named = {"split.by": "speaker", "split.held_out": ["synthetic_1"], "split.by_time": ["synthetic_2"],
             "split.val_fraction": 0.25, "lstm.context": 2}
    split = split_corpus(corpus, params(**named))
    train, val = np.flatnonzero(split.train["synthetic_2"]), np.flatnonzero(split.val["synthetic_2"])
    assert val.min() == 30 and val.max() == 39 and val.min() - train.max() >= 2 * 2 + 1  # its last 25 %
    assert train.min() == 0 and split.held_out() == {"synthetic_1"}  # held out whole: only the named person
    assert split.val["synthetic_1"].all() and split.train["synthetic_0"].all()
    with pytest.raises(ValueError, match="held out whole"):
        split_corpus(corpus, params(**{**named, "split.by_time": ["synthetic_1"]}))
    with pytest.raises(ValueError, match="no video 'nobody'"):
        split_corpus(corpus, params(**{**named, "split.by_time": ["nobody"]}))
    with pytest.raises(ParamsError, match="split.by: speaker"):
        params(**{"split.by": "time", "split.by_time": ["synthetic_2"]})


def test_speaker_targets_take_off_whose_mouth_it_is(six_videos, params):
    corpus = load_corpus(six_videos)
    for v in corpus.videos:  # each person's mouth sits elsewhere in the crop
        v.lips = v.lips + 0.01 * int(v.video_id[-1])
    split = split_corpus(corpus, params(**{"split.by": "speaker", "split.held_out": ["synthetic_5"]}))
    by_speaker = lips_data(corpus, split, params(**{"lstm.targets": "speaker"}).lstm, torch.device("cpu"))
    as_they_are = lips_data(corpus, split, params(**{"lstm.targets": "corpus"}).lstm, torch.device("cpu"))
    assert (by_speaker.lips_std < as_they_are.lips_std).all()  # the spread between people is gone
    offset = 0
    for v in corpus.videos:  # every video's targets have mean 0: no speech has to tell whose mouth it is
        count = int((split.train[v.video_id] & v.face_found).sum())
        centred = by_speaker.train.lips[offset:offset + count].numpy() * by_speaker.lips_std  # crop units
        assert count == 0 or np.abs(centred.mean(0)).max() < 1e-6
        offset += count
    np.testing.assert_allclose(by_speaker.lips_mean, as_they_are.lips_mean)  # predictions land on the corpus


def test_the_linear_map_learns_how_the_features_move_the_lips_of_a_person_it_never_heard(six_videos, params):
    """models/training/linear.py: lips a linear function of the features, each person's mouth elsewhere;
    the map fitted on five people asks the sixth's lips to move as theirs do, around the training mean."""
    corpus = load_corpus(six_videos)
    rng = np.random.default_rng(0)
    how = rng.normal(size=(corpus.videos[0].audio.shape[1], 16)) * 0.002
    for k, v in enumerate(corpus.videos):
        v.lips = (0.5 + 0.01 * k + (v.audio - v.audio.mean(0)) @ how).astype(np.float32)
    split = split_corpus(corpus, params(**{"split.by": "speaker", "split.held_out": ["synthetic_5"]}))
    p = params(**{"lstm.linear_weight": 1e-3, "lstm.context": 1, "lstm.phone_classes": "phones"})
    linear = fit_linear(corpus, split.train, p)
    held = corpus.video("synthetic_5")
    asked = linear_lips(linear, held.audio, 1)
    moved = held.lips - held.lips.mean(0)
    assert np.abs(moved).max() > 0.005
    error = np.linalg.norm(asked - asked.mean(0) - moved) / np.linalg.norm(moved)
    assert error < 0.25  # what is left: each person's mean features, which their own mean lips absorb
    assert abs(float(asked.mean()) - float(linear.lips_mean.mean())) < 0.02  # the training mean, not theirs
    assert fit_linear(corpus, split.train, params(**{"lstm.linear_share": 0})) is None
