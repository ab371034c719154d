"""Fuzz: malformed suite documents and malformed ``--set`` values.

Every generated input is wrong by construction (a missing key, a wrong type, a typo, a
number out of range, an unknown name), so the only right answer is the refusal every bad
input gets: exit status 2, exactly one line on stderr, no traceback, nothing written.
"""

from __future__ import annotations

import copy
import dataclasses
import string
import types
import typing
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dd_bench.cli import main
from dd_bench.evaluate import EvalConfig
from dd_bench.suite import METHOD_KEYS, TOP_LEVEL
from dd_bench.testing import make_registry, toy_suite_doc

FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
BASE = toy_suite_doc(name="fuzz", methods={"random": {}, "full": {}})
REQUIRED = ("name", "datasets", "ipcs", "methods", "eval_models", "seeds")
REGISTRY = make_registry()
BOOL_WORDS = {"1", "0", "true", "false", "yes", "no", "on", "off"}

# Text no number parser reads: letters and punctuation, no digits ("1_000" and "٣" are ints to Python).
junk = st.text(string.ascii_letters + " .-+/!?:,", min_size=1, max_size=12)
name = st.text(string.ascii_lowercase + "_", min_size=1, max_size=12)
huge = st.one_of(st.integers(min_value=2**63), st.integers(max_value=-(2**63) - 1))
fraction = st.floats(allow_nan=False, allow_infinity=False).filter(lambda x: not x.is_integer())
not_finite = st.sampled_from([float("nan"), float("inf"), float("-inf")])
not_a_list = st.one_of(junk, st.integers(), st.dictionaries(name, st.integers(), min_size=1, max_size=2))
not_a_mapping = st.one_of(junk, st.integers(), st.lists(st.integers(), min_size=1, max_size=3))
not_an_op = name.map(lambda n: n + "9")  # DSA ops are letters only


def refused(capsys, argv: list[Any]) -> None:
    """``dd-bench ARGV`` must end in the one-line refusal, whatever the input."""
    try:
        code = main([str(a) for a in argv])
    except SystemExit as exc:  # argparse
        code = exc.code
    out, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert code == 2 and out == "", (code, argv, err)
    assert len(lines) == 1 and "error:" in lines[0] and "Traceback (most recent" not in err, (argv, err)


# ---------------------------------------------------------------------------- suites


def _bad_names(known: typing.Iterable[str]) -> st.SearchStrategy:
    unknown = name.filter(lambda n: n not in set(known))
    return st.one_of(
        not_a_list,
        st.just([]),
        st.lists(unknown, min_size=1, max_size=2),
        st.lists(st.integers(), min_size=1, max_size=2),
    )


def _bad_ints(minimum: int, maximum: int | None = None) -> st.SearchStrategy:
    """Lists of integers that break the rule ``minimum <= i (<= maximum)``, or are no integers."""
    low = st.integers(max_value=minimum - 1)
    out = st.one_of(low, huge) if maximum is None else st.one_of(low, st.integers(min_value=maximum + 1))
    wrong = st.one_of(out, fraction, junk, st.booleans())
    return st.one_of(
        st.lists(wrong, min_size=1, max_size=3), st.just([]), st.dictionaries(name, st.integers(), min_size=1)
    )


def _bad_eval_values() -> st.SearchStrategy:
    """(setting, value) pairs EvalConfig refuses: wrong types, zero or negative counts, non-finite numbers."""
    hints = typing.get_type_hints(EvalConfig)
    wrong_type = st.sampled_from(sorted(hints)).flatmap(
        lambda k: st.tuples(
            st.just(k), st.one_of(st.lists(st.integers(), min_size=1), st.dictionaries(name, st.integers(), min_size=1))
        )
    )
    ranges = st.one_of(
        st.tuples(
            st.sampled_from(["epochs", "batch_size"]),
            st.one_of(st.integers(max_value=0), huge, fraction, st.booleans(), junk),
        ),
        st.tuples(
            st.sampled_from(["lr", "weight_decay", "momentum", "decay_at"]),
            st.one_of(not_finite, st.floats(max_value=-1e-9), junk),
        ),
        st.tuples(st.just("momentum"), st.floats(min_value=1.0, allow_infinity=False)),
        st.tuples(st.just("decay_at"), st.floats(min_value=1.0001, allow_infinity=False)),
        st.tuples(st.sampled_from(["dsa", "use_weights"]), st.one_of(st.integers(), junk)),
        st.tuples(st.just("dsa_strategy"), st.one_of(not_an_op, st.integers())),
    )
    return st.one_of(wrong_type, ranges)


def _typo(known: typing.Iterable[str]) -> st.SearchStrategy:
    """A key next to a known one (a letter more, a letter fewer, upper case), any unknown name, or no name (YAML allows it)."""
    known = sorted(known)
    anything = st.one_of(name, st.integers())
    if not known:
        return anything
    near = st.sampled_from(known).flatmap(lambda k: st.sampled_from([k + "s", k[:-1], k.upper(), k.replace("_", "-")]))
    return st.one_of(near, anything).filter(lambda k: k not in known)


# (path, strategy of bad values); a path runs from the document's top through mappings
BAD_AT: list[tuple[tuple[str, ...], st.SearchStrategy]] = [
    (
        ("name",),
        st.one_of(
            st.integers(),
            st.just(""),
            st.text(string.ascii_uppercase + " /", min_size=1, max_size=8),
            st.lists(name, min_size=1),
        ),
    ),
    (("version",), st.one_of(st.integers(max_value=0), fraction, junk, st.booleans())),
    (("datasets",), _bad_names(REGISTRY.datasets)),
    (
        ("ipcs",),
        st.one_of(_bad_ints(1), st.lists(st.integers(min_value=91, max_value=2**62), min_size=1, max_size=2)),
    ),  # toy: 90 a class
    (
        ("methods",),
        st.one_of(
            st.integers(),
            junk.filter(lambda t: t != "all"),
            st.just([]),
            st.just({}),
            st.lists(st.integers(), min_size=1),
        ),
    ),
    (("methods", "random"), not_a_mapping),
    (
        ("methods", "random", "preset"),
        st.one_of(
            st.integers(),
            name.filter(lambda n: n != "smoke"),
            st.dictionaries(st.integers(max_value=0), st.just("smoke"), min_size=1),
        ),
    ),
    (("methods", "random", "overrides"), not_a_mapping),
    (("methods", "random", "eval"), not_a_mapping),
    (("methods", "random", "seeds"), _bad_ints(0, 2**32 - 1)),
    (("methods", "random", "ipcs"), _bad_ints(1)),
    (("default_preset",), st.one_of(st.integers(), st.lists(name, min_size=1), name.filter(lambda n: n != "smoke"))),
    (("distill_model",), st.one_of(st.integers(), st.just(""), name.filter(lambda n: n not in REGISTRY.models))),
    (("eval_models",), _bad_names(REGISTRY.models)),
    (("seeds",), _bad_ints(0, 2**32 - 1)),
    (
        ("eval_seeds",),
        st.one_of(st.integers(max_value=0), st.integers(min_value=1001), _bad_ints(0, 2**32 - 1), junk, fraction),
    ),
    (("eval",), not_a_mapping),
    (("references",), not_a_mapping),
    (("references", "random"), st.one_of(st.integers(), name.filter(lambda n: n not in ("random", "full")))),
    (("budget_hours",), st.one_of(st.floats(max_value=0), not_finite, junk, st.booleans())),
    (("data",), not_a_mapping),
    (("data", "root"), st.one_of(st.integers(), st.lists(name, min_size=1), st.just("/nonexistent/dd-bench-fuzz"))),
    (("data", "download"), st.one_of(st.integers(), junk)),
]


@st.composite
def mutation(draw) -> tuple[str, tuple[str, ...], Any]:
    """One defect: ("del", path, None), ("set", path, value)."""
    kind = draw(st.sampled_from(["missing", "unknown", "bad value", "eval", "unknown method", "override"]))
    if kind == "missing":
        return "del", (draw(st.sampled_from(REQUIRED)),), None
    if kind == "unknown":
        where = draw(
            st.sampled_from(
                [
                    ((), TOP_LEVEL),
                    (("methods", "random"), METHOD_KEYS),
                    (("data",), {"root", "download"}),
                    (("references",), {"random", "full"}),
                    (("eval",), EvalConfig.__dataclass_fields__),
                    (("methods", "random", "eval"), EvalConfig.__dataclass_fields__),
                    (("methods", "random", "overrides"), ()),
                ]
            )
        )
        return "set", (*where[0], draw(_typo(where[1]))), draw(st.integers())
    if kind == "bad value":
        path, values = draw(st.sampled_from(BAD_AT))
        return "set", path, draw(values)
    if kind == "eval":
        key, value = draw(_bad_eval_values())
        return "set", (draw(st.sampled_from([("eval",), ("methods", "full", "eval")])) + (key,)), value
    if kind == "unknown method":
        return "set", ("methods", draw(name.filter(lambda n: n not in REGISTRY.distillers and n != "all"))), {}
    method, field, value = draw(malformed_setting(typed=True))
    return "set", ("methods", method, "overrides", field), value


def apply(doc: dict, change: tuple[str, tuple[str, ...], Any]) -> None:
    """Make the change where the path still runs through mappings (an earlier change may have broken it)."""
    op, path, value = change
    node = doc
    for key in path[:-1]:
        node = node.setdefault(key, {}) if isinstance(node, dict) else None
        if not isinstance(node, dict):
            return
    if op == "del":
        node.pop(path[-1], None)
    else:
        node[path[-1]] = value


@FUZZ
@given(changes=st.lists(mutation(), min_size=1, max_size=3))
def test_malformed_suites_are_one_line_and_exit_2(capsys, tmp_path, changes):
    doc = copy.deepcopy(BASE)
    for change in changes:
        apply(doc, change)
    path = tmp_path / "suite.yaml"
    path.write_text(yaml.safe_dump(doc, allow_unicode=True))
    refused(capsys, ["run", path, "--quiet", "--device", "cpu", "--tracking-uri", f"sqlite:///{tmp_path}/m.db"])
    assert not (tmp_path / "m.db").exists()


@FUZZ
@given(
    text=st.one_of(
        st.text(max_size=200),
        st.binary(max_size=200),
        st.sampled_from(
            [
                "name: [unclosed",
                "a:\n\tb: 1",
                "!!python/object/apply:os.system ['true']",
                "[" * 5000,
                "{a: " * 3000 + "1" + "}" * 3000,
            ]
        ),
    )
)
def test_files_that_are_no_suite_are_one_line_and_exit_2(capsys, tmp_path, text):
    path = tmp_path / "suite.yaml"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    refused(capsys, ["run", path, "--quiet", "--device", "cpu", "--tracking-uri", f"sqlite:///{tmp_path}/m.db"])
    assert not (tmp_path / "m.db").exists()


# ---------------------------------------------------------------------------- --set values

FREE_TEXT = {"vae", "vae_subfolder", "negative_prompt"}
"""Fields any text is a valid value of (a path, a model name, a prompt): nothing to malform but the key."""
CONFIG_FIELDS = [
    (method, f.name, typing.get_type_hints(reg.spec.config_cls)[f.name])
    for method, reg in sorted(REGISTRY.distillers.items())
    for f in dataclasses.fields(reg.spec.config_cls)
]


def malformed_text(field: str, hint: Any) -> st.SearchStrategy:
    """``--set`` text that no value of type ``hint`` reads as."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        (inner,) = [a for a in args if a is not type(None)]
        return malformed_text(field, inner).filter(lambda t: t.lower() not in ("none", "null"))
    if origin is typing.Literal:
        return st.one_of(junk, st.integers().map(str)).filter(lambda t: t not in map(str, args))
    if hint is bool:
        return st.one_of(junk, st.integers(min_value=2).map(str)).filter(lambda t: t.lower() not in BOOL_WORDS)
    if hint is int:
        return st.one_of(junk, fraction.map(repr), huge.map(str), st.just(""))
    if hint is float:  # junk that happens to read as nan or inf is just as wrong
        return st.one_of(junk, st.sampled_from(["nan", "inf", "-inf", "1e400", "-1e999", ""]))
    if field == "dsa_strategy":
        return not_an_op
    if field == "expert_optimizer":
        return name.filter(lambda n: n != "sgd" and n not in REGISTRY.optimizers)
    if field == "teacher_model":  # a decoupled method's teacher: a registered model
        return name.filter(lambda n: n not in REGISTRY.models)
    if field == "expert_files":  # a folder of MTT's replay_buffer_<n>.pt files: junk names none
        return junk
    if field == "prompt":  # a class-prompt template: it must hold {name} and no other placeholder
        return st.one_of(junk, junk.map(lambda t: t + " {name} {" + "label}"))
    raise AssertionError(f"no malformed values for {field}: {hint}")


@st.composite
def malformed_setting(draw, typed: bool = False) -> tuple[str, str, Any]:
    """(method, field, value) with a value of the wrong type for the field; ``typed``: as YAML would give it."""
    method, field, hint = draw(st.sampled_from([c for c in CONFIG_FIELDS if c[1] not in FREE_TEXT]))
    if typed:  # a suite's override is already a YAML value: a list or mapping is the wrong type for every field
        return (
            method,
            field,
            draw(
                st.one_of(
                    st.lists(st.integers(), min_size=1, max_size=2), st.dictionaries(name, st.integers(), min_size=1)
                )
            ),
        )
    return method, field, draw(malformed_text(field, hint))


@pytest.mark.parametrize(
    "method, field, hint", [c for c in CONFIG_FIELDS if c[1] not in FREE_TEXT], ids=lambda v: str(v)
)
@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_malformed_set_values_of_every_config_field_are_one_line_and_exit_2(
    capsys, tmp_path, method, field, hint, data
):
    value = data.draw(malformed_text(field, hint))
    refused(
        capsys,
        [
            "distill",
            "--method",
            method,
            "--preset",
            "smoke",
            "--dataset",
            "toy",
            "--ipc",
            1,
            "--set",
            f"{field}={value}",
            "--out",
            tmp_path / "x.pt",
            "--device",
            "cpu",
        ],
    )
    assert not (tmp_path / "x.pt").exists()


@pytest.mark.parametrize("method", sorted(REGISTRY.distillers))
@settings(max_examples=5, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_unknown_and_malformed_set_keys_are_one_line_and_exit_2(capsys, tmp_path, method, data):
    known = {f.name for f in dataclasses.fields(REGISTRY.distillers[method].spec.config_cls)}
    option = data.draw(st.one_of(_typo(known).map(lambda k: f"{k}=1"), junk, st.just("=1")))
    refused(
        capsys,
        [
            "distill",
            "--method",
            method,
            "--preset",
            "smoke",
            "--dataset",
            "toy",
            "--ipc",
            1,
            "--set",
            option,
            "--out",
            tmp_path / "x.pt",
            "--device",
            "cpu",
        ],
    )
    assert not (tmp_path / "x.pt").exists()
