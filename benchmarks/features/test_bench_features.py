"""Feature-extraction benchmarks: ratio gates against floors measured in the same run.

Results are recorded under "Feature extraction" in docs/benchmarks.md.
"""

from __future__ import annotations

import gc
import math
import time
from collections.abc import Callable
from itertools import pairwise

import numpy as np
import pytest
from evidence_features import FEATURE_SPEC, ParseLimits, extract_batch, extract_features
from evidence_features._codemap import load_code_map
from evidence_features._combined import fill_combined_features
from evidence_features._drugs import load_drug_catalog
from evidence_features._extract import _parse
from evidence_features._mib import read_mib_report
from evidence_features._mib_features import fill_mib_features
from evidence_features._rx import read_rx_report
from evidence_features._rx_features import fill_rx_features
from evidence_features._vector import FeatureVector
from evidence_features._xml import _new_parser, parse_document
from evidence_features.errors import DocumentKind
from lxml import etree
from pytest_benchmark.fixture import BenchmarkFixture

from .conftest import AS_OF, make_rx

pytestmark = pytest.mark.benchmark_gate


def call_seconds(function: Callable[[], object], rounds: int) -> list[float]:
    """Return the wall time of each of `rounds` back-to-back calls of `function`."""
    samples = []
    for _ in range(rounds):
        started = time.perf_counter()
        function()
        samples.append(time.perf_counter() - started)
    return samples


def median(samples: list[float]) -> float:
    """Return the upper median of `samples`."""
    return sorted(samples)[len(samples) // 2]


def median_seconds(function: Callable[[], object], rounds: int = 400) -> float:
    """Return the median wall time of `function` over `rounds` calls, after a warm-up."""
    call_seconds(function, 20)
    gc.disable()
    try:
        return median(call_seconds(function, rounds))
    finally:
        gc.enable()


def paired_medians(
    floor: Callable[[], object], subject: Callable[[], object], blocks: int = 20, size: int = 20
) -> tuple[float, float]:
    """Return the median wall times of `floor` and `subject`, measured in alternating blocks.

    A block of `size` floor calls, then a block of `size` subject calls, `blocks` times over, so
    a change in the machine's load during the run hits both medians alike. Within a block the
    calls repeat back to back, as in `median_seconds`.
    """
    call_seconds(floor, size)
    call_seconds(subject, size)
    floor_samples: list[float] = []
    subject_samples: list[float] = []
    gc.disable()
    try:
        for _ in range(blocks):
            floor_samples += call_seconds(floor, size)
            subject_samples += call_seconds(subject, size)
    finally:
        gc.enable()
    return median(floor_samples), median(subject_samples)


def parse_and_pull(mib: bytes, rx: bytes, parser: etree.XMLParser) -> tuple[object, object]:
    """Parse both documents and pull every record's fields as raw text, with no other work.

    The second floor of the typical-pair benchmark: one dict of child tag to text per Rx fill
    and, per ACORD FormInstance, one dict of descendant tag to text, with nothing normalised.
    """
    mib_root = etree.fromstring(mib, parser)
    rx_root = etree.fromstring(rx, parser)
    fills = [{child.tag: child.text for child in fill} for fill in rx_root.iter("{*}DrugFill")]
    records = [
        {element.tag: element.text for element in form.iter()}
        for form in mib_root.iter("{*}FormInstance")
    ]
    return fills, records


def stage_seconds(mib: bytes, rx: bytes) -> dict[str, float]:
    """Return the median of each extraction stage run on its own, on documents parsed once.

    Each stage runs in a tight loop, so its code and data stay in the CPU caches. Inside one
    `extract_features` call the stages run one after another and each starts with caches the
    others have filled, so they add up to less than the whole call.
    """
    limits = ParseLimits()
    catalog = load_drug_catalog()
    code_map = load_code_map()
    mib_root, _ = parse_document(mib, "MIB", limits)
    rx_root, _ = parse_document(rx, "RX", limits)
    assert mib_root is not None
    assert rx_root is not None
    mib_report = read_mib_report(mib_root)
    rx_report = read_rx_report(rx_root, catalog)
    as_of = AS_OF.toordinal()
    defaults = [spec.default for spec in FEATURE_SPEC]
    return {
        "read_mib": median_seconds(lambda: read_mib_report(mib_root)),
        "read_rx": median_seconds(lambda: read_rx_report(rx_root, catalog)),
        "mib_features": median_seconds(
            lambda: fill_mib_features(list(defaults), mib_report, as_of, code_map)
        ),
        "rx_features": median_seconds(
            lambda: fill_rx_features(list(defaults), rx_report, as_of, catalog)
        ),
    }


def in_call_seconds(mib: bytes, rx: bytes, rounds: int = 400) -> dict[str, float]:
    """Return the median of each step of one extraction, timed between the steps.

    The steps are those `_compute_row` runs, in its order, so each starts with the CPU caches
    the previous steps left. "rest" is the combined features, the result assembly and freeing
    both trees.
    """
    limits = ParseLimits()
    catalog = load_drug_catalog()
    code_map = load_code_map()
    samples: dict[str, list[float]] = {}
    clock = time.perf_counter

    def one_call() -> list[float]:
        warnings: dict[tuple[str, DocumentKind], int] = {}
        started = clock()
        mib_root, _ = _parse(mib, "MIB", limits, False, warnings)
        rx_root, _ = _parse(rx, "RX", limits, False, warnings)
        parsed = clock()
        assert mib_root is not None
        assert rx_root is not None
        mib_report = read_mib_report(mib_root)
        read_mib = clock()
        rx_report = read_rx_report(rx_root, catalog)
        read_rx = clock()
        as_of = AS_OF.toordinal()
        values = [spec.default for spec in FEATURE_SPEC]
        fill_mib_features(values, mib_report, as_of, code_map)
        mib_features = clock()
        fill_rx_features(values, rx_report, as_of, catalog)
        rx_features = clock()
        fill_combined_features(values)
        FeatureVector(np.array(values, dtype=np.float64), (), AS_OF)
        del mib_root, rx_root
        finished = clock()
        marks = (started, parsed, read_mib, read_rx, mib_features, rx_features, finished)
        return [later - earlier for earlier, later in pairwise(marks)]

    names = ("hardened_parse", "read_mib", "read_rx", "mib_features", "rx_features", "rest")
    for _ in range(20):
        one_call()
    gc.disable()
    try:
        for _ in range(rounds):
            for name, seconds in zip(names, one_call(), strict=True):
                samples.setdefault(name, []).append(seconds)
    finally:
        gc.enable()
    return {name: median(values) for name, values in samples.items()}


# Regression gate on extract p50 / raw parse p50. Seven runs on a loaded 2-core VM measured
# 5.23-6.14 with a median of 5.48 (docs/benchmarks.md). The gate is about 1.5x the median, so
# ordinary load noise passes and a large regression fails.
# NOTE: single runs of the earlier measurement, which timed the floor and the extraction one
# after the other, reached 7.9 during load spikes. A heavier spike can still fail this gate.
MAX_RATIO_TO_RAW_PARSE = 8.0
TARGET_RATIO_TO_RAW_PARSE = 2.0


def test_bench_typical_pair(benchmark: BenchmarkFixture, typical_pair: tuple[bytes, bytes]) -> None:
    """Extracting a typical pair stays within a fixed multiple of parsing it with lxml."""
    mib, rx = typical_pair
    parser = _new_parser()
    limits = ParseLimits()
    hardened_parse = median_seconds(
        lambda: (parse_document(mib, "MIB", limits), parse_document(rx, "RX", limits))
    )
    parse_pull = median_seconds(lambda: parse_and_pull(mib, rx, parser))
    stages = stage_seconds(mib, rx)
    in_call = in_call_seconds(mib, rx)
    raw_parse, extract = paired_medians(
        lambda: (etree.fromstring(mib, parser), etree.fromstring(rx, parser)),
        lambda: extract_features(mib, rx),
    )
    benchmark.extra_info.update(
        raw_parse_us=raw_parse * 1e6,
        hardened_parse_us=hardened_parse * 1e6,
        parse_and_pull_us=parse_pull * 1e6,
        extract_p50_us=extract * 1e6,
        ratio_to_raw_parse=extract / raw_parse,
        ratio_to_parse_and_pull=extract / parse_pull,
        **{f"{name}_alone_us": seconds * 1e6 for name, seconds in stages.items()},
        **{f"{name}_in_call_us": seconds * 1e6 for name, seconds in in_call.items()},
    )
    benchmark(extract_features, mib, rx)
    stage_text = ", ".join(f"{name} {seconds * 1e6:.0f}" for name, seconds in stages.items())
    in_call_text = ", ".join(f"{name} {seconds * 1e6:.0f}" for name, seconds in in_call.items())
    rest = extract - hardened_parse - sum(stages.values())
    print(
        f"\ntypical pair: raw parse {raw_parse * 1e6:.0f} us, hardened parse "
        f"{hardened_parse * 1e6:.0f} us, parse + field pull {parse_pull * 1e6:.0f} us, "
        f"extract p50 {extract * 1e6:.0f} us, ratio {extract / raw_parse:.2f} to raw parse, "
        f"{extract / parse_pull:.2f} to parse + field pull\n"
        f"stages alone (us): {stage_text}; rest of the call {rest * 1e6:.0f} us\n"
        f"steps inside one call (us): {in_call_text}"
    )
    assert extract / raw_parse <= MAX_RATIO_TO_RAW_PARSE


@pytest.mark.xfail(
    strict=True,
    reason="target ratio 2 not reached: parsing plus only pulling the record fields through "
    "lxml element proxies already costs about 2x the parse, and normalising the fields and "
    "computing the 105 features in Python add about 3x more",
)
def test_bench_typical_pair_target_ratio(typical_pair: tuple[bytes, bytes]) -> None:
    """Target: extract p50 at most 2x the raw parse of the same two documents."""
    mib, rx = typical_pair
    parser = _new_parser()
    raw_parse, extract = paired_medians(
        lambda: (etree.fromstring(mib, parser), etree.fromstring(rx, parser)),
        lambda: extract_features(mib, rx),
    )
    assert extract / raw_parse <= TARGET_RATIO_TO_RAW_PARSE


def min_cpu_seconds(functions: list[Callable[[], object]], rounds: int) -> list[float]:
    """Return the least CPU time of one call of each function, calling them in turn.

    The minimum of the thread's CPU time is the estimate least disturbed by other processes,
    which a growth ratio between two sizes needs more than a typical figure. Each round calls
    every function once, so a stretch of slow CPU (a busy VM host inflates the guest's CPU
    times too) hits all of them alike instead of one whole series.
    """
    for function in functions:
        for _ in range(5):
            function()
    best = [math.inf] * len(functions)
    gc.disable()
    try:
        for _ in range(rounds):
            for index, function in enumerate(functions):
                started = time.thread_time()
                function()
                best[index] = min(best[index], time.thread_time() - started)
    finally:
        gc.enable()
    return best


def test_bench_rx_growth_linear() -> None:
    """Going from 100 to 1,000 fills grows extraction no faster than it grows parsing."""
    small, large = make_rx(100), make_rx(1000)
    limits = ParseLimits()
    small_extract, large_extract, small_parse, large_parse = min_cpu_seconds(
        [
            lambda: extract_features(None, small),
            lambda: extract_features(None, large),
            lambda: parse_document(small, "RX", limits),
            lambda: parse_document(large, "RX", limits),
        ],
        rounds=20,
    )
    extract_growth = large_extract / small_extract
    parse_growth = large_parse / small_parse
    print(
        f"\nrx growth: 100 fills {small_extract * 1e3:.2f} ms, 1,000 fills "
        f"{large_extract * 1e3:.2f} ms (x{extract_growth:.1f}); parse alone "
        f"x{parse_growth:.1f}"
    )
    # Linear work grows about 10x; a quadratic step would grow about 100x.
    assert extract_growth <= 1.5 * max(parse_growth, 10.0)


def test_bench_batch_throughput(typical_pair: tuple[bytes, bytes]) -> None:
    """Batch extraction costs no more CPU per pair than a loop of single extractions.

    CPU time (`time.process_time`) is used because on a shared machine the wall time also
    counts the time the process waits for a core.
    """
    pairs = [typical_pair] * 200
    loop_seconds: list[float] = []
    batch_seconds: list[float] = []
    wall_seconds: list[float] = []
    for _ in range(3):
        started = time.process_time()
        for mib, rx in pairs:
            extract_features(mib, rx)
        loop_seconds.append(time.process_time() - started)
        started, wall_started = time.process_time(), time.perf_counter()
        extract_batch(pairs)
        batch_seconds.append(time.process_time() - started)
        wall_seconds.append(time.perf_counter() - wall_started)
    batch_per_pair = min(batch_seconds) / len(pairs)
    loop_per_pair = min(loop_seconds) / len(pairs)
    print(
        f"\nbatch: {1 / batch_per_pair:,.0f} pairs per CPU second on one core "
        f"({batch_per_pair * 1e6:.0f} us CPU per pair; single-call loop "
        f"{loop_per_pair * 1e6:.0f} us; wall {min(wall_seconds) / len(pairs) * 1e6:.0f} us)"
    )
    assert batch_per_pair <= 1.25 * loop_per_pair


def _one_fill(field: str, text: str) -> str:
    # An opioid name, so that the strength is read for its MME, unless the case sets the name.
    name = "" if field == "DrugGenericName" else "<DrugGenericName>OXYCODONE</DrugGenericName>"
    return (
        f"<IntelRXResponse><DrugFill><FillDate>2024-01-01</FillDate>{name}"
        f"<{field}>{text}</{field}></DrugFill></IntelRXResponse>"
    )


# Field texts that made a pattern rescan a run from every position in it, or read one number
# after another. Each repeats a unit, so its cost should grow with the repeat count.
PATHOLOGICAL_FIELDS: dict[str, tuple[str, Callable[[int], str]]] = {
    "spaces inside a drug name": ("DrugGenericName", lambda n: "A" + " " * n + "B"),
    "parentheses inside a drug name": ("DrugGenericName", lambda n: "A" + "(" * n + "B"),
    "spaced words inside a drug name": ("DrugGenericName", lambda n: "A " * n),
    "numbers in a strength": ("DrugStrength", lambda n: "1 " * n),
    "spaces in a quantity": ("Quantity", lambda n: " " * n + "x"),
}


@pytest.mark.parametrize("case", sorted(PATHOLOGICAL_FIELDS))
def test_bench_pathological_field_linear(case: str) -> None:
    """A field 8 times longer costs at most about 8 times more: no step rescans the text."""
    field, make_text = PATHOLOGICAL_FIELDS[case]
    small, large = _one_fill(field, make_text(4_000)), _one_fill(field, make_text(32_000))
    small_seconds, large_seconds = min_cpu_seconds(
        [lambda: extract_features(None, small), lambda: extract_features(None, large)], rounds=5
    )
    growth = large_seconds / small_seconds
    print(
        f"\n{case}: {small_seconds * 1e3:.2f} ms, 8x longer {large_seconds * 1e3:.2f} ms "
        f"(x{growth:.1f})"
    )
    # Linear work grows about 8x, and a quadratic step about 64x.
    assert growth <= 20.0
