"""workloads.trace: the .npz schema, its validation and the cache; the workloads CLI."""

import json
import os
import re
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from golden.bf16 import to_bf16_bits
from workloads import trace as trace_mod
from workloads.__main__ import main
from workloads.projected import PRESETS
from workloads.trace import FORMAT_VERSION, Trace, config_hash, load, load_or_make, save

FLOATS = ("keys", "keys_post", "values", "queries", "queries_post")
FLOATS += ("decode_queries", "decode_queries_post")
INTS = ("decode_positions", "decode_context", "frame_offsets", "segment_kind")

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def small(random_trace):
    """A hand-made trace: L=2, Hkv=2, G=2, 3 frames of 4 tokens, d=8, ``nd`` decode queries."""

    def make(nd: int = 3) -> Trace:
        return random_trace(
            seed=0, layers=2, head_dim=8, frame_offsets=[0, 4, 8, 12], decode_after=[0, 2, 2][:nd]
        )

    return make


def _arrays(trace: Trace) -> dict[str, np.ndarray]:
    out = {n: to_bf16_bits(getattr(trace, n)) for n in FLOATS}
    out.update({n: getattr(trace, n) for n in INTS})
    out["meta"] = np.array(json.dumps(trace.meta))
    return out


def _write(path: Path, arrays: dict[str, np.ndarray]) -> Path:
    with open(path, "wb") as f:
        np.savez(f, **arrays)
    return path


def _expect(path: Path, message: str) -> None:
    with pytest.raises(ValueError, match=rf"^{re.escape(str(path))}: {message}$"):
        load(path)


def test_round_trip_is_exact(tmp_path, small):
    trace = small()
    path = save(trace, tmp_path / "sub" / "t.npz")
    assert path == tmp_path / "sub" / "t.npz" and sorted(tmp_path.joinpath("sub").iterdir()) == [
        path
    ]
    with np.load(path) as npz:  # the file holds BF16 bit patterns
        assert npz["keys"].dtype == np.uint16 and npz["frame_offsets"].dtype == np.int64
        np.testing.assert_array_equal(npz["keys"], to_bf16_bits(trace.keys))
    back = load(path)
    for name in (*FLOATS, *INTS):
        a, b = getattr(back, name), getattr(trace, name)
        assert a.dtype == b.dtype
        np.testing.assert_array_equal(a, b)
    assert back.meta == trace.meta


def test_properties_and_immutability(small):
    t = small()
    assert (t.layers, t.kv_heads, t.q_heads, t.q_per_kv, t.n_tokens, t.head_dim) == (
        2,
        2,
        4,
        2,
        12,
        8,
    )
    assert (t.n_frames, t.n_decode, t.rope_base) == (3, 3, 10000.0)
    assert t.frame_slice(1) == slice(4, 8)
    np.testing.assert_array_equal(t.decode_after, [0, 2, 2])
    np.testing.assert_array_equal(t.decode_context, [4, 12, 12])
    assert t.nbytes_bf16() == 2 * 2 * (2 * 2 * 12 * 8 * 1.5 + 2 * 4 * 12 * 8 + 2 * 4 * 3 * 8)
    assert "3 frames, 12 tokens, L=2 Hkv=2 Hq=4 d=8, 3 decode queries" in t.summary()
    with pytest.raises(ValueError, match="read-only"):
        t.keys[0, 0, 0, 0] = 1.0
    with pytest.raises(ValueError, match=r"^frame must be in \[0, 3\), not 3$"):
        t.frame_slice(3)
    empty = small(nd=0)
    assert empty.decode_queries.shape == (2, 4, 0, 8) and empty.n_decode == 0


def test_constructor_rejects_bad_arrays(small):
    t = small()
    base = {n: getattr(t, n) for n in (*FLOATS, *INTS)}
    base["meta"] = t.meta
    cases = [
        ({"keys": t.keys.astype(np.float64)}, r"keys must have dtype float32, not float64"),
        (
            {"values": t.values + np.float32(1e-3)},
            r"values must hold BF16-representable values \(use bf16_round\)",
        ),
        (
            {"frame_offsets": np.array([0.0, 4, 8, 12])},
            r"frame_offsets must have an integer dtype, not float64",
        ),
        ({"queries": np.full_like(t.queries, np.inf)}, r"queries must be finite"),
        ({"meta": {"clip": "x"}}, r"meta\.format_version must be 2, not None"),
        (
            {"meta": {"format_version": 2, "rope_base": None, "x": object()}},
            r"meta must be JSON-serialisable \(.*\)",
        ),
        (
            {"meta": {"format_version": 2, "rope_base": 1.0}},
            r"meta\.rope_base must be a finite number greater than 1 or null \(no RoPE\), not 1\.0",
        ),
        (
            {"meta": {"format_version": 2}},
            r"meta\.rope_base must be a finite number greater than 1 or null \(no RoPE\), "
            r"not 'missing'",
        ),
    ]
    for change, message in cases:
        with pytest.raises(ValueError, match=rf"^{message}$"):
            Trace(**{**base, **change})


def test_load_rejects_malformed_files(tmp_path, small):
    good = _arrays(small())
    (tmp_path / "text.npz").write_text("not a zip")
    _expect(tmp_path / "text.npz", r"not an \.npz trace \(not a zip archive\)")
    with pytest.raises(FileNotFoundError):
        load(tmp_path / "absent.npz")

    def case(name: str, message: str, **changes):
        arrays = {**good, **changes}
        for key in [k for k, v in changes.items() if v is None]:
            del arrays[key]
        _expect(_write(tmp_path / f"{name}.npz", arrays), message)

    case("missing", "missing array 'values'", values=None)
    case("extra", "unexpected array 'positions'", positions=np.arange(3))
    case(
        "dtype",
        r"keys must have dtype uint16 \(BF16 bits\), not float32",
        keys=good["keys"].astype(np.float32),
    )
    case(
        "offdtype",
        "frame_offsets must have dtype int64, not int32",
        frame_offsets=good["frame_offsets"].astype(np.int32),
    )
    case(
        "rank", r"queries must have 4 dimensions \(L, Hq, N, d\), not 3", queries=good["queries"][0]
    )
    case(
        "rank1",
        r"decode_context must have 1 dimension \(Nd,\), not 2",
        decode_context=good["decode_context"][None],
    )
    case(
        "post",
        r"keys_post shape \(2, 2, 11, 8\) must equal keys shape \(2, 2, 12, 8\)",
        keys_post=good["keys_post"][:, :, :11],
    )
    case(
        "kind",
        r"segment_kind must hold 0 \(frame\), 1 \(text\) or 2 \(answer\), not \[0, 3, 0\]",
        segment_kind=np.array([0, 3, 0], np.int8),
    )
    case(
        "kinddtype",
        "segment_kind must have dtype int8, not int64",
        segment_kind=np.zeros(3, np.int64),
    )
    case(
        "kinds",
        "segment_kind length 2 must equal the 3 segments",
        segment_kind=np.zeros(2, np.int8),
    )
    case(
        "values",
        r"values shape \(2, 2, 11, 8\) must equal keys shape \(2, 2, 12, 8\)",
        values=good["values"][:, :, :11],
    )
    case(
        "qheads",
        "queries heads 3 must be a positive multiple of the 2 KV heads",
        queries=good["queries"][:, :3],
        decode_queries=good["decode_queries"][:, :3],
        queries_post=good["queries_post"][:, :3],
        decode_queries_post=good["decode_queries_post"][:, :3],
    )
    case(
        "qlen",
        r"queries shape \(2, 4, 10, 8\) must be \(L, Hq, N, d\) = \(2, Hq, 12, 8\) to match keys",
        queries=good["queries"][:, :, :10],
        queries_post=good["queries_post"][:, :, :10],
    )
    case(
        "dq",
        r"decode_queries shape \(2, 4, 3, 6\) must be \(L, Hq, Nd, d\) = \(2, 4, Nd, 8\)",
        decode_queries=good["decode_queries"][..., :6],
        decode_queries_post=good["decode_queries_post"][..., :6],
    )
    case(
        "mono",
        r"frame_offsets must be strictly increasing, not \[0, 8, 4, 12\]",
        frame_offsets=np.array([0, 8, 4, 12]),
    )
    case(
        "end",
        r"frame_offsets must start at 0 and end at N = 12 with at least one segment, "
        r"not \[0, 4, 8\]",
        frame_offsets=np.array([0, 4, 8]),
        segment_kind=np.zeros(2, np.int8),
    )
    case(
        "ctx",
        r"decode_context must be in \[1, 12\], not \[4, 12, 13\]",
        decode_context=np.array([4, 12, 13]),
    )
    case(
        "order",
        r"decode_context must be non-decreasing, not \[12, 4, 12\]",
        decode_context=np.array([12, 4, 12]),
        decode_positions=np.array([12, 4, 12]),
    )
    case(
        "ndec",
        "decode_context length 2 must equal the 3 decode queries",
        decode_context=np.array([4, 12]),
    )
    case(
        "pos",
        r"decode_positions must be decode_context - 1 \(a token of the stream\) or "
        r"decode_context \(an external query\), not \[4, 12, 9\]",
        decode_positions=np.array([4, 12, 9]),
    )
    nan_keys = good["keys"].copy()
    nan_keys[1, 1, 5, 3] = 0x7FC0
    case("nan", r"keys must be finite \(holds inf or NaN patterns\)", keys=nan_keys)
    case(
        "version",
        "meta.format_version must be 2, not 3",
        meta=np.array(json.dumps({"format_version": 3, "rope_base": None})),
    )
    case("json", r"meta is not valid JSON \(.*\)", meta=np.array("{format"))
    case("list", r"meta must be a JSON object \(dict\), not list", meta=np.array("[1]"))
    case(
        "metatype", r"meta must be a 0-d string array \(JSON\), not int64 \(3,\)", meta=np.arange(3)
    )
    case("pickle", r"keys is unreadable \(.*\)", keys=np.array([{"a": 1}], dtype=object))
    case(
        "float_version",
        r"meta\.format_version must be 2, not 2\.0",
        meta=np.array(json.dumps({"format_version": 2.0, "rope_base": None})),
    )
    case(
        "huge_base",  # too large for a float: was numpy's TypeError from isfinite
        r"meta\.rope_base must be a finite number greater than 1 or null \(no RoPE\), not 1+0+",
        meta=np.array('{"format_version": 2, "rope_base": 1' + "0" * 400 + "}"),
    )
    damaged = _write(tmp_path / "damaged.npz", good)
    data = bytearray(damaged.read_bytes())
    data[0] ^= 1  # the zip directory is intact, the first local header is not
    damaged.write_bytes(bytes(data))
    _expect(damaged, r"unreadable \.npz \(.*pickled.*\)")
    for bit, why in ((0, "encrypted"), (5, "compressed patched data")):
        # A flag bit of a central-directory entry: zipfile's RuntimeError/NotImplementedError.
        data = bytearray(_write(tmp_path / f"flag{bit}.npz", good).read_bytes())
        entry = data.index(b"PK\x01\x02")
        data[entry + 8] |= 1 << bit
        (tmp_path / f"flag{bit}.npz").write_bytes(bytes(data))
        _expect(tmp_path / f"flag{bit}.npz", rf"\w+ is unreadable \(.*{why}.*\)")


def test_an_old_trace_names_the_fix(tmp_path):
    """A format-1 trace (no post-RoPE arrays) is refused with the command that remakes it."""
    old = {n: np.zeros((1, 1, 2, 2), np.uint16) for n in ("keys", "values", "queries")} | {
        "decode_queries": np.zeros((1, 1, 0, 2), np.uint16),
        "decode_after": np.zeros(0, np.int64),
        "frame_offsets": np.array([0, 2]),
        "meta": np.array(json.dumps({"format_version": 1})),
    }
    _expect(
        _write(tmp_path / "v1.npz", old),
        r"meta\.format_version is 1, an older trace format than 2: remake it with "
        r"`python -m workloads make \.\.\.` \(or delete build/traces to rebuild caches\)",
    )
    assert FORMAT_VERSION == 2


#: Hypothesis examples of the malformed-trace fuzz (``make fuzz``: ``FUZZ_EXAMPLES``).
TRACE_FUZZ_EXAMPLES = max(200, int(os.environ.get("FUZZ_EXAMPLES", "2000")) // 4)
ARRAYS = (*FLOATS, *INTS, "meta")
DTYPES = ["int8", "int16", "int32", "int64", "uint16", "uint32", "float16", "float32"]
DTYPES += ["float64", "bool", "complex64", "<U3"]
META_VALUES = st.sampled_from([None, True, 1, 2, 3, "2", 2.0, 0.5, 1e4, 10**400, float("nan")])
#: What a ``load`` message names after ``<path>: ``: an array, ``meta``, or the file itself.
PROBLEM = re.compile(
    rf"^({'|'.join(ARRAYS)})\b|^(missing|unexpected) array '|^not an \.npz|^unreadable \.npz"
)


def _mutation() -> st.SearchStrategy:
    name = st.sampled_from(ARRAYS)
    return st.one_of(
        st.tuples(st.just("drop"), name),
        st.tuples(st.just("extra"), st.sampled_from(["positions", "Keys", "meta2"])),
        st.tuples(st.just("dtype"), name, st.sampled_from(DTYPES)),
        st.tuples(st.just("shape"), name, st.sampled_from(["first", "axis", "empty", "scalar"])),
        st.tuples(st.just("poke"), name, st.integers(0, 10**6), st.integers(-(2**40), 2**40)),
        st.tuples(
            st.just("nan"),
            st.sampled_from(FLOATS),
            st.integers(0, 10**6),
            st.sampled_from([0x7FC0, 0x7F80, 0xFF80, 0xFFFF]),
        ),
        st.tuples(st.just("meta"), st.sampled_from(["format_version", "rope_base"]), META_VALUES),
        st.tuples(st.just("metatext"), st.sampled_from(["{", "[1]", "3", '"x"', "{}", "null"])),
        st.tuples(st.just("truncate"), st.floats(0, 1)),
        st.tuples(st.just("flip"), st.floats(0, 1), st.integers(1, 255)),
    )


def _mutate(arrays: dict, path: Path, mutations: list) -> None:
    """Write ``arrays`` changed by ``mutations`` to ``path`` (file-level ones last)."""
    arrays = dict(arrays)
    meta = json.loads(str(arrays["meta"][()]))
    for m in mutations:
        kind, *args = m
        if kind == "drop":
            arrays.pop(args[0], None)
        elif kind == "extra":
            arrays[args[0]] = np.arange(3)
        elif kind == "dtype" and args[0] in arrays:
            a = arrays[args[0]]
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # complex to real, overflow
                    arrays[args[0]] = a.astype(args[1])
            except (ValueError, OverflowError):  # e.g. the JSON text as a number
                arrays[args[0]] = np.zeros(a.shape, args[1])
        elif kind == "shape" and args[0] in arrays:
            a = np.asarray(arrays[args[0]])  # a[0] of a 1-d string array is a NumPy scalar
            arrays[args[0]] = {
                "first": a[0] if a.ndim and len(a) else a[None],
                "axis": a[None],
                "empty": a.reshape(-1)[:0],
                "scalar": np.array(a.reshape(-1)[0] if a.size else 0, a.dtype),
            }[args[1]]
        elif kind in ("poke", "nan") and args[0] in arrays and args[0] != "meta":
            a = arrays[args[0]].copy()
            if a.size and a.dtype.kind in "iu":
                info = np.iinfo(a.dtype)
                a.reshape(-1)[args[1] % a.size] = np.clip(args[2], info.min, info.max)
            arrays[args[0]] = a
        elif kind == "meta":
            meta[args[0]] = args[1]
            arrays["meta"] = np.array(json.dumps(meta))
        elif kind == "metatext":
            arrays["meta"] = np.array(args[0])
    _write(path, arrays)
    for kind, *args in mutations:
        data = bytearray(path.read_bytes())
        if kind == "truncate":
            path.write_bytes(data[: int(args[0] * len(data))])
        elif kind == "flip" and data:
            data[int(args[0] * (len(data) - 1))] ^= args[1]
            path.write_bytes(bytes(data))


@settings(
    max_examples=TRACE_FUZZ_EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(mutations=st.lists(_mutation(), min_size=1, max_size=3))
def test_fuzz_malformed_traces(tmp_path, small, mutations):
    """A mutated trace file loads (the mutation kept it valid) or is refused with a
    ``ValueError`` naming the file and the problem: never a deep error of another type."""
    path = tmp_path / "fuzz.npz"
    _mutate(_arrays(small()), path, mutations)
    try:
        trace = load(path)
    except ValueError as error:
        message = str(error)
        assert message.startswith(f"{path}: "), message
        assert PROBLEM.match(message[len(f"{path}: ") :]), message
        event(f"refused: {message[len(f'{path}: ') :].split()[0]}")
        return
    event("loaded")
    assert trace.n_tokens == 12 and trace.meta["format_version"] == FORMAT_VERSION


def test_load_or_make_caches_by_config(tmp_path, monkeypatch):
    cfg = PRESETS["tiny"].replace(layers=1, max_frames=2)
    made = load_or_make(cfg, tmp_path, progress=False)
    files = list(tmp_path.iterdir())
    assert [f.name for f in files] == [f"carphone_pristine-det-{config_hash(cfg)[:16]}.npz"]

    def no_make(*args, **kwargs):
        raise AssertionError("the cached trace should have been used")

    monkeypatch.setattr("workloads.projected.make_trace", no_make)
    cached = load_or_make(cfg, tmp_path, progress=False)
    np.testing.assert_array_equal(cached.keys, made.keys)
    assert cached.meta == json.loads(json.dumps(made.meta))
    assert config_hash(cfg) != config_hash(cfg.replace(seed=1))
    assert config_hash(cfg) == config_hash(PRESETS["tiny"].replace(max_frames=2, layers=1))


def test_load_or_make_rebuilds_a_bad_cache_file(tmp_path):
    cfg = PRESETS["tiny"].replace(layers=1, max_frames=1, decode_queries=1)
    path = tmp_path / f"carphone_pristine-det-{config_hash(cfg)[:16]}.npz"
    path.write_text("garbage")
    trace = load_or_make(cfg, tmp_path, progress=False)
    assert trace.n_tokens == 49 and load(path).n_tokens == 49


def test_cli_make_and_info(tmp_path, capsys):
    out = tmp_path / "x.npz"
    assert (
        main(["make", "--preset", "tiny", "--layers", "1", "--frames", "2", "-q", "-o", str(out)])
        == 0
    )
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert line.startswith(f"trace: wrote {out} (") and line.endswith(
        "these are not video-LLM keys"
    )
    assert "2 frames, 98 tokens, L=1 Hkv=2 Hq=4 d=16, 4 decode queries" in line
    trace = load(out)
    assert trace.meta["config"]["max_frames"] == 2 and trace.meta["fps"] is None
    assert trace.rope_base == 500000.0
    assert main(["info", str(out)]) == 0
    text = capsys.readouterr().out
    assert "keys                 BF16   (1, 2, 98, 16)" in text
    assert "tokens               98 in 2 segments (49..49 per segment)" in text
    assert text.strip().splitlines()[-1].startswith(f"trace: {out}: 2 frames, 98 tokens")
    # --fps native / --frames all map to None.
    assert (
        main(["make", "--fps", "2", "--frames", "all", "--layers", "1", "-q", "-o", str(out)]) == 0
    )
    assert load(out).n_frames == 8  # carphone at 2 fps
    args = ["make", "--rope-base", "none", "--frames", "1", "--layers", "1", "-q", "-o", str(out)]
    assert main(args) == 0
    trace = load(out)
    assert trace.rope_base is None
    np.testing.assert_array_equal(trace.keys_post, trace.keys)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["make", "--tokens-per-frame", "50"], r"argument --tokens-per-frame: invalid choice: 50"),
        (
            ["make", "--fps", "-1"],
            r"argument --fps: must be 'native' or a positive number, not '-1'",
        ),
        (["make", "--frames", "0"], r"argument --frames: must be at least 1, not 0"),
        (["make", "--head-dim", "x"], r"argument --head-dim: must be an integer, not 'x'"),
        (["make", "--clip", "nope"], r"argument --clip: invalid choice: 'nope'"),
        (["make", "--preset", "huge"], r"argument --preset: invalid choice: 'huge'"),
        (
            ["make", "--features", "rec", "--layers", "3"],
            r"argument --layers: layers must be at most 2 with features 'rec'",
        ),
        (["make", "--head-dim", "15"], r"argument --head-dim: head_dim must be even"),
        (
            ["make", "--rope-base", "0"],
            r"argument --rope-base: must be 'none' or a positive number, not '0'",
        ),
        (
            ["make", "--rope-base", "1"],
            r"argument --rope-base: rope_base must be greater than 1 or None \(no RoPE\)",
        ),
    ],
)
def test_cli_errors_name_the_option(tmp_path, capsys, argv, message):
    with pytest.raises(SystemExit) as exit_info:
        main([*argv, "-o", str(tmp_path / "x.npz")])
    assert exit_info.value.code == 2
    assert re.search(message, capsys.readouterr().err)
    assert not (tmp_path / "x.npz").exists()


def test_cli_requires_output(capsys):
    with pytest.raises(SystemExit):
        main(["make"])
    assert "the following arguments are required: -o/--output" in capsys.readouterr().err


def test_cli_info_on_a_bad_file_via_python_m(tmp_path):
    bad = tmp_path / "bad.npz"
    bad.write_text("nope")
    run = subprocess.run(
        [sys.executable, "-m", "workloads", "info", str(bad)],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    assert run.returncode == 2
    assert run.stderr.strip() == f"trace info: {bad}: not an .npz trace (not a zip archive)"


def test_module_docstring_documents_every_array():
    for name in (*FLOATS, *INTS, "meta"):
        assert f"``{name}``" in trace_mod.__doc__
