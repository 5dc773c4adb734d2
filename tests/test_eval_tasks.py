"""Every task loader against a small fixture in its dataset's official layout, plus a broken layout each."""
from __future__ import annotations

import json
import os

import pytest

from eval.tasks import TASKS, LayoutError, get_task, load_all
from tests._eval_support import touch, wav, write

TEN = ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go")


# -- Speech Commands ------------------------------------------------------------------------------------

def _speech_commands(root, v2=False):
    words = list(TEN) + ["bed", "bird"] + (["backward", "forward", "follow", "learn", "visual"] if v2 else [])
    if v2:
        words += ["cat", "dog", "down2", "eight", "five", "four", "happy", "house", "marvin", "nine", "one", "seven",
                  "sheila", "six", "three", "tree", "two", "wow", "zero"][: 35 - len(words)]
    val, test = [], []
    for w in words:
        for i, spk in enumerate(("0a7c2a8d", "0b09edd3", "0c2ca723")):
            rel = f"{w}/{spk}_nohash_{i}.wav"
            touch(os.path.join(root, rel))
            (val if i == 1 else test if i == 2 else []).append(rel)
    write(os.path.join(root, "validation_list.txt"), "\n".join(val) + "\n")
    write(os.path.join(root, "testing_list.txt"), "\n".join(test) + "\n")
    wav(os.path.join(root, "_background_noise_", "white_noise.wav"), seconds=20.0)
    write(os.path.join(root, "_background_noise_", "README.md"), "noise\n")
    return words


def test_speech_commands_v1_12(tmp_path):
    root = str(tmp_path / "speech_commands_v0.01")
    _speech_commands(root)
    spec = get_task("speech_commands_v1_12")
    assert spec.locate(str(tmp_path)) == root
    td = spec.load(root)
    assert td.protocol == "sc-v1-12" and len(td.classes) == 12 and not td.multilabel
    assert set(td.classes) == set(TEN) | {"_unknown_", "_silence_"}
    by = {c.path.split(os.sep)[-2] + "/" + os.path.basename(c.path): c for c in td.clips if c.start is None}
    assert by["bed/0a7c2a8d_nohash_0.wav"].labels == ("_unknown_",)
    assert by["yes/0b09edd3_nohash_1.wav"].split == "valid"
    assert by["yes/0c2ca723_nohash_2.wav"].split == "test"
    sil = [c for c in td.clips if c.labels == ("_silence_",)]
    # 20-s noise: train region [0, 16) s -> 31 windows, valid [16, 18] -> 3, test [18, 20] -> 3 (1 s at 0.5 s hop)
    assert [sum(c.split == s for c in sil) for s in ("train", "valid", "test")] == [31, 3, 3]
    for s, (a, b) in {"train": (0, 16), "valid": (16, 18), "test": (18, 20)}.items():
        assert all(a <= c.start and c.start + c.duration <= b + 1e-6 for c in sil if c.split == s)
    assert all(c.duration == 1.0 for c in sil)


def test_speech_commands_v2_35_and_version_checks(tmp_path):
    v2 = str(tmp_path / "v2")
    _speech_commands(v2, v2=True)
    td = get_task("speech_commands_v2_35").load(v2)
    assert td.protocol == "sc-v2-35" and len(td.classes) == 35 and "_silence_" not in td.classes
    assert get_task("speech_commands_v2_12").load(v2).protocol == "sc-v2-12"
    with pytest.raises(LayoutError, match="v2"):
        get_task("speech_commands_v1_12").load(v2)
    v1 = str(tmp_path / "v1")
    _speech_commands(v1)
    with pytest.raises(LayoutError, match="backward"):
        get_task("speech_commands_v2_35").load(v1)


def test_speech_commands_broken(tmp_path):
    root = str(tmp_path / "sc")
    _speech_commands(root)
    os.remove(os.path.join(root, "testing_list.txt"))
    with pytest.raises(LayoutError, match="testing_list.txt"):
        get_task("speech_commands_v1_12").load(root)


# -- ESC-50 / UrbanSound8K ------------------------------------------------------------------------------

def _esc50(root, drop_audio=False):
    rows = ["filename,fold,target,category,esc10,src_file,take"]
    for fold in range(1, 6):
        for target, cat in ((0, "dog"), (1, "rooster")):
            for take in "AB":
                fn = f"{fold}-{100 + target}{fold}-{take}-{target}.wav"
                rows.append(f"{fn},{fold},{target},{cat},True,{100 + target}{fold},{take}")
                if not (drop_audio and fold == 3):
                    touch(os.path.join(root, "audio", fn))
    write(os.path.join(root, "meta", "esc50.csv"), "\n".join(rows) + "\n")


def test_esc50(tmp_path):
    root = str(tmp_path / "ESC-50-master")
    _esc50(root)
    td = get_task("esc50").locate(str(tmp_path)) and get_task("esc50").load(root)
    assert td.protocol == "esc50-5fold" and td.folds == [1, 2, 3, 4, 5] and td.classes == ["dog", "rooster"]
    assert len(td.clips) == 20 and all(c.split == "" for c in td.clips)


def test_esc50_broken(tmp_path):
    root = str(tmp_path / "esc")
    _esc50(root, drop_audio=True)
    with pytest.raises(LayoutError, match=r"audio/3-"):
        get_task("esc50").load(root)
    write(os.path.join(root, "meta", "esc50.csv"), "filename,fold,category\nx.wav,1,dog\n")
    with pytest.raises(LayoutError, match="lacks column"):
        get_task("esc50").load(root)


def _us8k(root):
    rows = ["slice_file_name,fsID,start,end,salience,fold,classID,class"]
    for fold in (1, 2, 3):
        for cid, cls in ((0, "air_conditioner"), (3, "dog_bark")):
            fn = f"{100 + fold}-{cid}-0-0.wav"
            rows.append(f"{fn},{100 + fold},0.0,4.0,1,{fold},{cid},{cls}")
            touch(os.path.join(root, "audio", f"fold{fold}", fn))
    write(os.path.join(root, "metadata", "UrbanSound8K.csv"), "\n".join(rows) + "\n")


def test_urbansound8k(tmp_path):
    root = str(tmp_path / "UrbanSound8K")
    _us8k(root)
    td = get_task("urbansound8k").load(get_task("urbansound8k").locate(str(tmp_path)))
    assert td.protocol == "us8k-10fold" and td.folds == [1, 2, 3] and len(td.clips) == 6


def test_urbansound8k_broken(tmp_path):
    os.makedirs(tmp_path / "audio")
    with pytest.raises(LayoutError, match="UrbanSound8K.csv"):
        get_task("urbansound8k").load(str(tmp_path))


# -- NSynth ---------------------------------------------------------------------------------------------

def _nsynth(root, with_valid=True):
    fams = ["bass", "guitar", "mallet"]
    for split in ("train", "valid", "test") if with_valid else ("train", "test"):
        meta = {}
        for i, fam in enumerate(fams):
            for pitch in (60, 62):
                note = f"{fam}_acoustic_{i:03d}-{pitch:03d}-100"
                meta[note] = {"note_str": note, "instrument_family_str": fam, "pitch": pitch, "velocity": 100,
                              "instrument_str": f"{fam}_acoustic_{i:03d}"}
                touch(os.path.join(root, f"nsynth-{split}", "audio", note + ".wav"))
        write(os.path.join(root, f"nsynth-{split}", "examples.json"), json.dumps(meta))


def test_nsynth(tmp_path):
    root = str(tmp_path / "nsynth")
    _nsynth(root)
    ins = get_task("nsynth_instrument").load(get_task("nsynth_instrument").locate(str(tmp_path)))
    assert ins.protocol == "nsynth-instrument" and ins.classes == ["bass", "guitar", "mallet"]
    assert {c.split for c in ins.clips} == {"train", "valid", "test"}
    pit = get_task("nsynth_pitch").load(root)
    assert pit.protocol == "nsynth-pitch" and pit.classes == ["60", "62"]


def test_nsynth_broken(tmp_path):
    root = str(tmp_path / "nsynth")
    _nsynth(root, with_valid=False)
    assert get_task("nsynth_instrument").load(root)  # the valid archive is optional
    os.remove(os.path.join(root, "nsynth-test", "examples.json"))
    with pytest.raises(LayoutError, match="nsynth-test/examples.json"):
        get_task("nsynth_instrument").load(root)


# -- speakers and languages -----------------------------------------------------------------------------

def _voxceleb(root):
    lines = []
    for spk in ("id10001", "id10002"):
        for j, split in enumerate((1, 2, 3, 1)):
            rel = f"{spk}/vid{j}/0000{j}.wav"
            touch(os.path.join(root, "wav", rel))
            lines.append(f"{split} {rel}")
    write(os.path.join(root, "iden_split.txt"), "\n".join(lines) + "\n")


def test_voxceleb(tmp_path):
    root = str(tmp_path / "voxceleb1")
    _voxceleb(root)
    td = get_task("voxceleb1_id").load(get_task("voxceleb1_id").locate(str(tmp_path)))
    assert td.protocol == "vox1-iden" and td.classes == ["id10001", "id10002"]
    assert sorted(c.split for c in td.clips).count("train") == 4


def test_voxceleb_broken(tmp_path):
    _voxceleb(str(tmp_path))
    os.remove(os.path.join(tmp_path, "wav", "id10002", "vid2", "00002.wav"))
    with pytest.raises(LayoutError, match="id10002/vid2/00002.wav"):
        get_task("voxceleb1_id").load(str(tmp_path))


def test_voxforge(tmp_path):
    root = tmp_path / "voxforge"
    for lang in ("de", "en", "es"):
        for user in ("anna", "bob", "carl", "dora", "eve", "finn", "gus", "hana", "ida", "jon"):  # test split: >= 2 languages
            for k in range(2):
                touch(str(root / lang / f"{user}{lang}-20080101-x{k}" / "wav" / f"a{k}.wav"))
    td = get_task("voxforge_lid").load(get_task("voxforge_lid").locate(str(tmp_path)))
    assert td.protocol == "voxforge-user-hash" and td.classes == ["de", "en", "es"]
    where = {}
    for c in td.clips:  # speaker-disjoint splits
        assert where.setdefault(c.group, c.split) == c.split


def test_voxforge_broken(tmp_path):
    os.makedirs(tmp_path / "english")
    with pytest.raises(LayoutError, match="en"):
        get_task("voxforge_lid").load(str(tmp_path))


def _librispeech(root, drop_trans=False):
    for spk, chap in (("19", "198"), ("26", "495")):
        d = os.path.join(root, "train-clean-100", spk, chap)
        for u in range(20):  # enough that both speakers reach the hashed test split
            touch(os.path.join(d, f"{spk}-{chap}-{u:04d}.flac"))
        if not drop_trans:
            write(os.path.join(d, f"{spk}-{chap}.trans.txt"), f"{spk}-{chap}-0000 HELLO\n")


def test_librispeech(tmp_path):
    root = str(tmp_path / "LibriSpeech")
    _librispeech(root)
    td = get_task("librispeech100_spk").load(get_task("librispeech100_spk").locate(str(tmp_path)))
    assert td.protocol == "ls100-utt-hash" and td.classes == ["19", "26"] and len(td.clips) == 40


def test_librispeech_broken(tmp_path):
    _librispeech(str(tmp_path), drop_trans=True)
    with pytest.raises(LayoutError, match="19-198.trans.txt"):
        get_task("librispeech100_spk").load(str(tmp_path))


# -- MUSAN, TUT, birds ----------------------------------------------------------------------------------

def _musan(root, skip=None):
    for c, sub in (("music", "fma"), ("speech", "librivox"), ("noise", "free-sound")):
        if c == skip:
            continue
        for i in range(12):
            touch(os.path.join(root, c, sub, f"{c}-{sub}-{i:04d}.wav"))
        write(os.path.join(root, c, sub, "ANNOTATIONS"), "x\n")


def test_musan(tmp_path):
    root = str(tmp_path / "musan")
    _musan(root)
    td = get_task("musan").load(get_task("musan").locate(str(tmp_path)))
    assert td.protocol == "musan-file-hash" and td.classes == ["music", "noise", "speech"] and len(td.clips) == 36
    assert get_task("musan").max_seconds == 10.0


def test_musan_broken(tmp_path):
    _musan(str(tmp_path), skip="noise")
    with pytest.raises(LayoutError, match="noise"):
        get_task("musan").load(str(tmp_path))


def _tut(root, drop_eval=False):
    meta, tr, ev = ["filename\tscene_label\tidentifier\tsource_label"], [], []
    for scene in ("airport", "park"):
        for loc in range(3):
            for seg in range(2):
                fn = f"audio/{scene}-barcelona-{loc}-{seg}-a.wav"
                touch(os.path.join(root, fn))
                meta.append(f"{fn}\t{scene}\tbarcelona-{loc}\ta")
                (ev if loc == 2 else tr).append(f"{fn}\t{scene}")
    write(os.path.join(root, "meta.csv"), "\n".join(meta) + "\n")
    write(os.path.join(root, "evaluation_setup", "fold1_train.txt"), "\n".join(tr) + "\n")
    if not drop_eval:
        write(os.path.join(root, "evaluation_setup", "fold1_evaluate.txt"), "\n".join(ev) + "\n")


def test_tut(tmp_path):
    root = str(tmp_path / "TUT-urban-acoustic-scenes-2018-development")
    _tut(root)
    td = get_task("tut18_scenes").load(get_task("tut18_scenes").locate(str(tmp_path)))
    assert td.protocol == "tut18-fold1" and td.classes == ["airport", "park"]
    assert sum(c.split == "test" for c in td.clips) == 4
    assert all(c.group.startswith("barcelona-") for c in td.clips)


def test_tut_broken(tmp_path):
    _tut(str(tmp_path), drop_eval=True)
    with pytest.raises(LayoutError, match="fold1_evaluate.txt"):
        get_task("tut18_scenes").load(str(tmp_path))


def _bird(root, skip_birdvox=False):
    sets = (("ff1010bird_metadata_2018.csv", "ff1010bird_wav/wav", "ff1010bird"),
            ("warblrb10k_public_metadata_2018.csv", "warblrb10k_public_wav/wav", "warblrb10k"),
            ("BirdVoxDCASE20k_csvpublic.csv", "BirdVox-DCASE-20k/wav", "BirdVox-DCASE-20k"))
    for csv_name, adir, dsid in sets:
        if skip_birdvox and dsid.startswith("BirdVox"):
            continue
        rows = ["itemid,datasetid,hasbird"]
        for i in range(4):
            item = f"{dsid[:4]}{i:04d}"
            rows.append(f"{item},{dsid},{i % 2}")
            touch(os.path.join(root, adir, item + ".wav"))
        write(os.path.join(root, csv_name), "\n".join(rows) + "\n")


def test_bird_audio_detection(tmp_path):
    _bird(str(tmp_path))
    td = get_task("bird_audio_detection").load(get_task("bird_audio_detection").locate(str(tmp_path)))
    assert td.protocol == "bad18-dataset-3fold" and td.folds == [1, 2, 3] and td.classes == ["bird", "no_bird"]
    assert len(td.clips) == 12


def test_bird_broken(tmp_path):
    _bird(str(tmp_path), skip_birdvox=True)
    with pytest.raises(LayoutError, match="BirdVoxDCASE20k_csvpublic.csv"):
        get_task("bird_audio_detection").load(str(tmp_path))


# -- multi-label: MagnaTagATune, FSD50K, AudioSet -------------------------------------------------------

def _mtat(root, bad_header=False):
    tags = ["guitar", "classical", "slow", "techno", "no tag"]
    head = ["clip_id", *tags, "mp3_path"] if not bad_header else ["id", *tags, "path"]
    rows = ["\t".join(f'"{h}"' for h in head)]
    for i, folder in enumerate("0123456789abcdef"):
        mp3 = f"{folder}/artist-track-{i}-0-29.mp3"
        on = [int((i + j) % 3 == 0) for j in range(len(tags) - 1)] + [0]
        if i == 5:
            on = [0] * len(tags)  # no tag at all: dropped
        rows.append("\t".join([f'"{i}"', *[f'"{x}"' for x in on], f'"{mp3}"']))
        touch(os.path.join(root, "mp3", mp3))
    write(os.path.join(root, "annotations_final.csv"), "\n".join(rows) + "\n")


def test_mtat(tmp_path):
    root = str(tmp_path / "magnatagatune")
    _mtat(root)
    spec = get_task("mtat_top50")
    td = spec.load(spec.locate(str(tmp_path)))
    assert td.multilabel and spec.multilabel and spec.metric == "mAP" and td.protocol == "mtat-top50"
    assert "no tag" not in td.classes
    assert {c.split for c in td.clips} == {"train", "valid", "test"}
    assert [c.split for c in td.clips if c.path.split(os.sep)[-2] == "c"] == ["valid"]
    assert len(td.clips) == 15


def test_mtat_broken(tmp_path):
    _mtat(str(tmp_path), bad_header=True)
    with pytest.raises(LayoutError, match="clip_id"):
        get_task("mtat_top50").load(str(tmp_path))


def _fsd50k(root, drop_vocab=False):
    gt = os.path.join(root, "FSD50K.ground_truth")
    if not drop_vocab:
        write(os.path.join(gt, "vocabulary.csv"), "0,Bark,/m/05tny_\n1,Meow,/m/07qrkrw\n2,Music,/m/04rlf\n")
    write(os.path.join(gt, "dev.csv"), 'fname,labels,mids,split\n64760,"Bark,Music","/m/05tny_,/m/04rlf",train\n'
          '16399,Meow,/m/07qrkrw,train\n8,Music,/m/04rlf,val\n')
    write(os.path.join(gt, "eval.csv"), 'fname,labels,mids\n37199,"Meow,Music","/m/07qrkrw,/m/04rlf"\n')
    for f in ("64760", "16399", "8"):
        touch(os.path.join(root, "FSD50K.dev_audio", f + ".wav"))
    touch(os.path.join(root, "FSD50K.eval_audio", "37199.wav"))


def test_fsd50k(tmp_path):
    root = str(tmp_path / "FSD50K")
    _fsd50k(root)
    td = get_task("fsd50k").load(get_task("fsd50k").locate(str(tmp_path)))
    # one label convention with ingest: AudioSet MIDs, names for display only
    assert td.multilabel and td.classes == ["/m/04rlf", "/m/05tny_", "/m/07qrkrw"] and td.protocol == "fsd50k-official"
    assert td.display_names == {"/m/05tny_": "Bark", "/m/07qrkrw": "Meow", "/m/04rlf": "Music"}
    by = {os.path.basename(c.path): c for c in td.clips}
    assert by["64760.wav"].labels == ("/m/04rlf", "/m/05tny_") and by["8.wav"].split == "valid"
    assert by["37199.wav"].split == "test"


def test_fsd50k_broken(tmp_path):
    _fsd50k(str(tmp_path), drop_vocab=True)
    with pytest.raises(LayoutError, match="vocabulary.csv"):
        get_task("fsd50k").load(str(tmp_path))


def _audioset(root, drop_index=False):
    head = "# Segments csv created Sun Mar  5 10:54:31 2017\n# num_ytids=3, num_segs=3, num_unique_labels=2\n" \
           "# YTID, start_seconds, end_seconds, positive_labels\n"
    write(os.path.join(root, "balanced_train_segments.csv"), head +
          '--PJHxphWEs, 30.000, 40.000, "/m/09x0r,/t/dd00088"\n--ZhevVpy1s, 50.000, 60.000, "/m/012xff"\n'
          'missing0001, 10.000, 20.000, "/m/012xff"\n')
    write(os.path.join(root, "eval_segments.csv"), head + '--4gqARaEJE, 0.000, 10.000, "/m/068hy,/m/07q6cd_"\n')
    if not drop_index:
        write(os.path.join(root, "class_labels_indices.csv"), 'index,mid,display_name\n0,/m/09x0r,"Speech"\n'
              '1,/t/dd00088,"Gush"\n2,/m/012xff,"Whip"\n3,/m/068hy,"Domestic animals, pets"\n4,/m/07q6cd_,"Squeak"\n')
    touch(os.path.join(root, "audio", "balanced_train", "Y--PJHxphWEs_30.000_40.000.wav"))
    touch(os.path.join(root, "audio", "balanced_train", "--ZhevVpy1s.flac"))
    touch(os.path.join(root, "audio", "eval", "--4gqARaEJE.wav"))


def test_audioset(tmp_path):
    root = str(tmp_path / "audioset")
    _audioset(root)
    td = get_task("audioset").load(get_task("audioset").locate(str(tmp_path)))
    assert td.multilabel and td.protocol == "audioset-balanced" and len(td.classes) == 5
    assert len(td.clips) == 3 and any("1 listed segments have no audio" in n for n in td.notes)
    assert sorted(c.labels for c in td.clips if c.split == "test") == [("/m/068hy", "/m/07q6cd_")]


def test_audioset_broken(tmp_path):
    _audioset(str(tmp_path), drop_index=True)
    with pytest.raises(LayoutError, match="class_labels_indices.csv"):
        get_task("audioset").load(str(tmp_path))


# -- Fluent Speech Commands -----------------------------------------------------------------------------

def _fluent(root, bad=False):
    head = ",path,speakerId,transcription,action,object,location" if not bad else ",path,speakerId,transcription,action"
    for split in ("train", "valid", "test"):
        rows = [head]
        for i, (a, o, l) in enumerate((("activate", "lights", "kitchen"), ("increase", "volume", "none"))):
            p = f"wavs/speakers/2BqVo8kVB2Skwgyb/{split}{i}.wav"
            touch(os.path.join(root, p))
            rows.append(f"{i},{p},2BqVo8kVB2Skwgyb,turn on,{a},{o},{l}" if not bad else f"{i},{p},2BqVo8kVB2Skwgyb,x,{a}")
        write(os.path.join(root, "data", f"{split}_data.csv"), "\n".join(rows) + "\n")


def test_fluent(tmp_path):
    root = str(tmp_path / "fluent_speech_commands_dataset")
    _fluent(root)
    td = get_task("fluent_intent").load(get_task("fluent_intent").locate(str(tmp_path)))
    assert td.protocol == "fsc-intent" and td.slots == ["action", "object", "location"]
    assert "action=activate|object=lights|location=kitchen" in td.classes and len(td.classes) == 2


def test_fluent_broken(tmp_path):
    _fluent(str(tmp_path), bad=True)
    with pytest.raises(LayoutError, match="object"):
        get_task("fluent_intent").load(str(tmp_path))


# -- generic: folder and csv ----------------------------------------------------------------------------

def test_folder_layouts(tmp_path):
    flat = tmp_path / "flat"
    for lab in ("cat", "dog"):
        for i in range(10):
            touch(str(flat / lab / "sub" / f"{i}.wav"))
    td = get_task("folder").load(str(flat))
    assert td.protocol == "folder-hash-80-20" and td.classes == ["cat", "dog"]
    assert {c.split for c in td.clips} <= {"train", "test"} and len(td.clips) == 20
    split = tmp_path / "split"
    for s in ("train", "val", "test"):
        for lab in ("cat", "dog"):
            touch(str(split / s / lab / "a.wav"))
    td = get_task("folder").load(str(split))
    assert td.protocol == "folder-splits" and sorted({c.split for c in td.clips}) == ["test", "train", "valid"]


def test_folder_broken(tmp_path):
    touch(str(tmp_path / "train" / "cat" / "a.wav"))
    touch(str(tmp_path / "dog" / "b.wav"))
    with pytest.raises(LayoutError, match="mixes split folders"):
        get_task("folder").load(str(tmp_path))


def test_csv_layouts(tmp_path):
    for i in range(6):
        touch(str(tmp_path / "a" / f"{i}.wav"))
    single = write(str(tmp_path / "single.csv"), "path,label,split\n" + "".join(
        f"a/{i}.wav,{'x' if i % 2 else 'y'},{('train', 'valid', 'test')[i % 3]}\n" for i in range(6)))
    td = get_task("csv").load(single)
    assert td.protocol == "csv-splits" and not td.multilabel and td.classes == ["x", "y"]
    multi = write(str(tmp_path / "multi.csv"), "path,labels\n" + "".join(f"a/{i}.wav,x;y\n" for i in range(6)))
    td = get_task("csv").load(multi)
    assert td.multilabel and td.protocol == "csv-hash-80-20" and td.clips[0].labels == ("x", "y")
    folds = write(str(tmp_path / "labels.csv"), "path,label,fold\n" + "".join(f"a/{i}.wav,{'x' if i % 2 else 'y'},{i % 3}\n" for i in range(6)))
    td = get_task("csv").load(str(tmp_path))  # a folder holding labels.csv
    assert td.kfold and td.folds == [0, 1, 2] and td.protocol == "csv-kfold"
    assert folds


def test_csv_broken(tmp_path):
    touch(str(tmp_path / "a.wav"))
    bad = write(str(tmp_path / "bad.csv"), "path,label,labels\na.wav,x,x\n")
    with pytest.raises(LayoutError, match="exactly one of"):
        get_task("csv").load(bad)
    missing = write(str(tmp_path / "missing.csv"), "path,label\nb.wav,x\n")
    with pytest.raises(LayoutError, match="b.wav"):
        get_task("csv").load(missing)
    with pytest.raises(LayoutError, match="labels.csv"):
        get_task("csv").load(str(tmp_path / "nowhere"))


# -- demo -----------------------------------------------------------------------------------------------

def test_demo_from_shards_and_audio(demo_small):
    shard_root, audio_root = demo_small
    fam = get_task("demo_family").load(shard_root)
    assert fam.protocol == "demo-train-test" and fam.classes == ["impact", "instrument", "noise", "speech"]
    assert len(fam.clips) == 24 and fam.mel_dirs and fam.mel_frontend_hash
    assert all(os.path.isfile(c.path) for c in fam.clips)
    fam_a = get_task("demo_family").load(audio_root)
    assert sorted(c.key for c in fam_a.clips) == sorted(c.key for c in fam.clips)  # same keys as the shards
    pitch = get_task("demo_pitch").load(shard_root)
    assert 0 < len(pitch.clips) < len(fam.clips) and all(p in "ABCDEFG#" for c in pitch.clips for p in c.labels[0])


def test_demo_broken(tmp_path):
    with pytest.raises(LayoutError, match="labels.csv"):
        get_task("demo_family").load(str(tmp_path))


def test_registry_covers_issue_tasks():
    names = set(load_all())
    paper = ("speech_commands_v1_12", "speech_commands_v2_12", "speech_commands_v2_35", "esc50", "urbansound8k",
              "nsynth_instrument", "nsynth_pitch", "voxceleb1_id", "voxforge_lid", "librispeech100_spk", "musan",
              "tut18_scenes", "bird_audio_detection", "mtat_top50", "fsd50k", "audioset", "fluent_intent", "folder",
              "csv", "demo_family", "demo_pitch", "demo_timbre")
    assert set(paper) <= names
    for s in TASKS.values():
        assert s.protocol and s.layout and s.domain in ("environment", "speech", "music", "other")
    assert {n for n in paper if TASKS[n].multilabel} == {"mtat_top50", "fsd50k", "audioset"}


def test_audioset_task_validates_rows_like_ingest(tmp_path):
    """One parser for ingest and eval: a spreadsheet-mangled ID or a bad time is skipped and counted."""
    root = str(tmp_path / "audioset")
    _audioset(root)
    with open(os.path.join(root, "balanced_train_segments.csv"), "a") as f:
        f.write('#NAME?, 30.000, 40.000, "/m/09x0r"\nshort, 1.0, 2.0, "/m/09x0r"\n--ZhevVpy1s, 9.0, 1.0, "/m/012xff"\n')
    touch(os.path.join(root, "audio", "balanced_train", "short.wav"))
    td = get_task("audioset").load(root)
    assert len(td.clips) == 3 and any(n.startswith("3 rows of the segment CSVs") for n in td.notes)
    assert td.display_names["/m/068hy"] == "Domestic animals, pets"
