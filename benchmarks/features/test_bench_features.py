"""Feature-extraction benchmarks: ratio gates against floors measured in the same run.

Results are recorded under "Feature extraction" in docs/benchmarks.md.
"""

from __future__ import annotations

import gc
import math
import time
from collections.abc import Callable

import pytest
from evidence_features import ParseLimits, extract_batch, extract_features
from evidence_features._xml import _new_parser, parse_document
from lxml import etree

from .conftest import make_rx

pytestmark = pytest.mark.benchmark_gate


def median_seconds(function: Callable[[], object], rounds: int = 400) -> float:
    """Return the median wall time of `function` over `rounds` calls, after a warm-up."""
    for _ in range(20):
        function()
    samples = []
    gc.disable()
    try:
        for _ in range(rounds):
            started = time.perf_counter()
            function()
            samples.append(time.perf_counter() - started)
    finally:
        gc.enable()
    samples.sort()
    return samples[len(samples) // 2]


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


# Regression gate on extract p50 / raw parse p50. Nine runs on a loaded 2-core VM measured
# 5.3-7.9 with a median of 5.8 (docs/benchmarks.md). The gate is about 1.5x the median, so
# ordinary load noise passes and a large regression fails.
# NOTE: the 7.9 came from a load spike; a heavier spike on a shared runner can fail this gate.
MAX_RATIO_TO_RAW_PARSE = 9.0
TARGET_RATIO_TO_RAW_PARSE = 2.0


def test_bench_typical_pair(benchmark, typical_pair: tuple[bytes, bytes]) -> None:  # type: ignore[no-untyped-def]
    """Extracting a typical pair stays within a fixed multiple of parsing it with lxml."""
    mib, rx = typical_pair
    parser = _new_parser()
    limits = ParseLimits()
    raw_parse = median_seconds(
        lambda: (etree.fromstring(mib, parser), etree.fromstring(rx, parser))
    )
    hardened_parse = median_seconds(
        lambda: (parse_document(mib, "MIB", limits), parse_document(rx, "RX", limits))
    )
    parse_pull = median_seconds(lambda: parse_and_pull(mib, rx, parser))
    extract = median_seconds(lambda: extract_features(mib, rx))
    benchmark.extra_info.update(
        raw_parse_us=raw_parse * 1e6,
        hardened_parse_us=hardened_parse * 1e6,
        parse_and_pull_us=parse_pull * 1e6,
        extract_p50_us=extract * 1e6,
        ratio_to_raw_parse=extract / raw_parse,
        ratio_to_parse_and_pull=extract / parse_pull,
    )
    benchmark(extract_features, mib, rx)
    print(
        f"\ntypical pair: raw parse {raw_parse * 1e6:.0f} us, hardened parse "
        f"{hardened_parse * 1e6:.0f} us, parse + field pull {parse_pull * 1e6:.0f} us, "
        f"extract p50 {extract * 1e6:.0f} us, ratio {extract / raw_parse:.2f} to raw parse, "
        f"{extract / parse_pull:.2f} to parse + field pull"
    )
    assert extract / raw_parse <= MAX_RATIO_TO_RAW_PARSE


@pytest.mark.xfail(
    strict=True,
    reason="target ratio 2 not reached: parsing plus only pulling the record fields through "
    "lxml element proxies already costs about 2x the parse, leaving nothing for the features",
)
def test_bench_typical_pair_target_ratio(typical_pair: tuple[bytes, bytes]) -> None:
    """Target: extract p50 at most 2x the raw parse of the same two documents."""
    mib, rx = typical_pair
    parser = _new_parser()
    raw_parse = median_seconds(
        lambda: (etree.fromstring(mib, parser), etree.fromstring(rx, parser))
    )
    extract = median_seconds(lambda: extract_features(mib, rx))
    assert extract / raw_parse <= TARGET_RATIO_TO_RAW_PARSE


def min_cpu_seconds(function: Callable[[], object], rounds: int) -> float:
    """Return the least CPU time of one `function` call over `rounds` calls, after a warm-up.

    The minimum of the thread's CPU time is the estimate least disturbed by other processes,
    which a growth ratio between two sizes needs more than a typical figure.
    """
    for _ in range(5):
        function()
    best = math.inf
    gc.disable()
    try:
        for _ in range(rounds):
            started = time.thread_time()
            function()
            best = min(best, time.thread_time() - started)
    finally:
        gc.enable()
    return best


def test_bench_rx_growth_linear() -> None:
    """Going from 100 to 1,000 fills grows extraction no faster than it grows parsing."""
    small, large = make_rx(100), make_rx(1000)
    limits = ParseLimits()
    small_extract = min_cpu_seconds(lambda: extract_features(None, small), rounds=60)
    large_extract = min_cpu_seconds(lambda: extract_features(None, large), rounds=15)
    small_parse = min_cpu_seconds(lambda: parse_document(small, "RX", limits), rounds=60)
    large_parse = min_cpu_seconds(lambda: parse_document(large, "RX", limits), rounds=15)
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
