# -*- test-case-name: tests.test_benchmark_smoke -*-
"""
The figures reported for one measured phase, computed from counts,
latencies and a L{procstat.delta}: rates, CPU milliseconds per 1000 units,
percentiles and which side was CPU-bound.

Server CPU per 1000 units is the headline: on a shared, noisy machine it
moves far less than a wall-clock rate, because a neighbour that steals the
core slows the rate but barely changes the CPU each unit costs.
"""

BUSY_THRESHOLD = 0.85


def percentile(sortedValues, p: float):
    """
    The nearest-rank C{p}th percentile (0-100) of already sorted values;
    None when there are none.
    """
    if not sortedValues:
        return None
    rank = round(p / 100.0 * (len(sortedValues) - 1))
    return sortedValues[min(len(sortedValues) - 1, max(0, rank))]


def latencySummary(values, toMilliseconds: float) -> dict:
    """n, p50, p90, p99, max and mean in milliseconds; {} without values."""
    ordered = sorted(values)
    if not ordered:
        return {}
    ms = lambda v: round(v * toMilliseconds, 3)  # noqa: E731
    return {"n": len(ordered),
            "p50_ms": ms(percentile(ordered, 50)), "p90_ms": ms(percentile(ordered, 90)),
            "p99_ms": ms(percentile(ordered, 99)), "max_ms": ms(ordered[-1]),
            "mean_ms": ms(sum(ordered) / len(ordered))}


def boundSide(serverDemand: float, genDemand: float,
              threshold: float = BUSY_THRESHOLD) -> str:
    """
    Which side wanted a whole core (running plus waiting for the CPU):
    C{"server"}, C{"generator"}, C{"both"} or C{"neither"}.  Only a
    server-bound phase measures the server's capacity.
    """
    server, gen = serverDemand >= threshold, genDemand >= threshold
    if server and gen:
        return "both"
    return "server" if server else "generator" if gen else "neither"


def phaseFigures(accounting: dict, count: int, unit: str,
                 threshold: float = BUSY_THRESHOLD) -> dict:
    """
    The accounting of a phase plus C{count} units of work: rate per second,
    server and generator CPU milliseconds per 1000 units, the bound side.
    Floats are rounded for the JSON.
    """
    figures = dict(accounting, count=count, unit=unit)
    wall = accounting.get("wall_s", 0)
    if wall > 0:
        figures["rate_per_s"] = count / wall
    if count:
        figures["server_cpu_ms_per_1k"] = accounting["server_cpu_s"] * 1e6 / count
        figures["gen_cpu_ms_per_1k"] = accounting["gen_cpu_s"] * 1e6 / count
        if "server_cpu_s_by_process" in accounting:
            figures["server_cpu_ms_per_1k_by_process"] = [
                round(cpu * 1e6 / count, 1) for cpu in accounting["server_cpu_s_by_process"]]
        if "redis_calls" in accounting:
            figures["redis_calls_per_unit"] = round(
                sum(accounting["redis_calls"].values()) / count, 3)
    figures["bound"] = boundSide(accounting.get("server_demand", 0.0),
                                 accounting.get("gen_demand", 0.0), threshold)
    return {key: round(value, 4) if isinstance(value, float) else value
            for key, value in figures.items()}
