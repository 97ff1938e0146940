"""Nested counters that step a core through its state words and synapses."""

from amaranth.hdl import Cat, Mux, Signal

__all__ = ["Odometer", "RangeCounter"]


class Odometer:
    """Nested counters (the last one fastest) that step together; ``values`` are Signals."""

    def __init__(self, sizes, name):
        self.sizes = list(sizes)
        self.values = [Signal(range(max(n, 1)), name=f"{name}{i}")
                       for i, n in enumerate(self.sizes)]

    def last(self):
        return Cat(*[v == n - 1 for v, n in zip(self.values, self.sizes)]).all()

    def next_values(self):
        """The values after one step (wrapping), as expressions."""
        out, carry = [], 1
        for v, n in reversed(list(zip(self.values, self.sizes))):
            wrap = carry & (v == n - 1)
            out.append(Mux(carry, Mux(wrap, 0, v + 1), v))
            carry = wrap
        return list(reversed(out))

    def step(self, m):
        m.d.sync += [v.eq(n) for v, n in zip(self.values, self.next_values())]

    def load(self, m, values):
        m.d.sync += [v.eq(x) for v, x in zip(self.values, values)]


class RangeCounter:
    """Nested counters (the last one fastest), each running from its own ``first`` to its
    own ``last`` (inclusive, registers loaded per spike) and wrapping back to ``first``."""

    def __init__(self, sizes, name):
        self.sizes = list(sizes)
        shapes = [range(max(n, 1)) for n in self.sizes]
        self.values = [Signal(s, name=f"{name}{i}") for i, s in enumerate(shapes)]
        self.firsts = [Signal(s, name=f"{name}{i}_first") for i, s in enumerate(shapes)]
        self.lasts = [Signal(s, name=f"{name}{i}_last") for i, s in enumerate(shapes)]

    def last(self):
        return Cat(*[v == e for v, e in zip(self.values, self.lasts)]).all()

    def next_values(self):
        out, carry = [], 1
        for v, f, e in reversed(list(zip(self.values, self.firsts, self.lasts))):
            wrap = carry & (v == e)
            out.append(Mux(carry, Mux(wrap, f, v + 1), v))
            carry = wrap
        return list(reversed(out))

    def load(self, m, bounds):
        """Start at ``bounds`` = ``[(first, last), ...]`` (expressions)."""
        for v, f, e, (first, last) in zip(self.values, self.firsts, self.lasts, bounds):
            m.d.sync += [v.eq(first), f.eq(first), e.eq(last)]
