"""A simulation harness around the generated ``onespike_top``: the per-cycle work of the
cocotb testbench, moved into the simulator.

:func:`harness_verilog` writes a Verilog module ``onespike_harness`` (from ``manifest.json``
alone, so it wraps any ``onespike generate`` folder, including one given with ``--rtl``)
that

* feeds the input stream from a memory that the testbench loads (``load`` rising:
  ``$readmemh`` of ``stimulus.hex`` in the run folder: the samples, then junk samples),
* draws idle input cycles and output backpressure from two xorshift generators seeded by
  the ``seed`` input, the probabilities given as 16-bit thresholds (``idle_thr``,
  ``bp_thr`` = probability · 65536),
* with ``reset_after`` > 0 first streams the junk samples for that many cycles and pulses the
  accelerator's reset (a reset in the middle of an inference), then streams the samples,
* logs every transfer on every tap, on ``tap_logits`` and on ``o`` into ``taps.log``, payloads
  in binary (an ``X`` bit shows as ``x``), and the first cycle in which a handshake
  (``i__ready``, ``o__valid``, every ``tap_*__valid``) is not 0 or 1 (and stops there),
* makes the clock itself (no simulator callback into cocotb per edge),
* counts cycles and results, and raises ``done`` after the last result plus
  :data:`TAIL_CYCLES` (in which nothing may transfer), or with ``hang`` after ``max_cycles``.

The testbench (:mod:`onespike.sim.testbench`) sets the inputs once, waits for ``done`` (waking
only for the progress report) and decodes the log with
:class:`~onespike.sim.observed.TapDecoder`. Log lines: ``<n> <bits>`` for ``tap_<n>``,
``L <bits>`` for ``tap_logits``, ``O <cycle> <bits>`` for a class on ``o``, ``I <cycle>``
for the first input transfer, ``X <cycle> <bits>`` for undefined handshakes (in the order of
:func:`handshake_names`).
"""

from __future__ import annotations

import hashlib

__all__ = ["HARNESS_TOP", "TAIL_CYCLES", "LOG", "STIMULUS", "harness_verilog",
           "handshake_names", "depth_bits", "harness_sha"]

HARNESS_TOP = "onespike_harness"
HALF_PERIOD_NS = 5          # the clock is made in the harness: 10 ns a cycle
TAIL_CYCLES = 32            # cycles after the last result in which nothing may transfer
LOG = "taps.log"
STIMULUS = "stimulus.hex"


def depth_bits(words: int) -> int:
    """Address bits of the stimulus memory for ``words`` words (at least 2**12), rounded up
    to a power of two so that runs of similar size share one build."""
    return max(12, (max(1, words) - 1).bit_length())


def _taps(manifest) -> list:
    """``(label, valid port, payload port, width)`` of every tap, ``tap_logits`` last."""
    widths = {p["name"]: p["width"] for p in manifest["ports"]}
    names = [f"tap_{n}" for n in range(len(manifest["layers"]))] + ["tap_logits"]
    return [(str(n) if n < len(names) - 1 else "L", f"{name}__valid", f"{name}__payload",
             widths[f"{name}__payload"]) for n, name in enumerate(names)]


def handshake_names(manifest) -> list:
    """The handshake signals in the order of the bits of an ``X`` log line, MSB first."""
    return ["i__ready", "o__valid"] + [valid for _, valid, _, _ in _taps(manifest)]


_XORSHIFT = """  function [31:0] xorshift(input [31:0] x);
    reg [31:0] y;
    begin
      y = x ^ (x << 13);
      y = y ^ (y >> 17);
      xorshift = y ^ (y << 5);
    end
  endfunction
"""


def _declarations(manifest, bits: int) -> str:
    widths = {p["name"]: p["width"] for p in manifest["ports"]}
    lines = [f"  reg [{widths['i__payload'] - 1}:0] mem [0:{(1 << bits) - 1}];",
             f"  reg [{widths['i__payload'] - 1}:0] i_payload = 0;",
             f"  wire [{widths['o__payload'] - 1}:0] o_payload;",
             f"  reg [{bits}:0] addr = 0, last = 0;"]
    for label, valid, payload, width in _taps(manifest):
        lines.append(f"  wire t{label}_valid;")
        lines.append(f"  wire [{width - 1}:0] t{label}_payload;")
    return "\n".join(lines)


def _instance(manifest) -> str:
    conns = [".clk(clk)", ".rst(acc_rst)", ".i__valid(i_valid)", ".i__payload(i_payload)",
             ".i__ready(i_ready)", ".o__valid(o_valid)", ".o__payload(o_payload)",
             ".o__ready(o_ready)"]
    for label, valid, payload, _ in _taps(manifest):
        conns += [f".{valid}(t{label}_valid)", f".{payload}(t{label}_payload)"]
    return "  onespike_top dut (\n    " + ",\n    ".join(conns) + ");"


def _log(manifest) -> str:
    """The logging statements of the watched phases (inside the clocked block)."""
    lines = []
    for label, _, _, _ in _taps(manifest):
        lines.append(f'        if (t{label}_valid) $fwrite(fd, "{label} %b\\n", '
                     f't{label}_payload);')
    handshakes = ", ".join(["i_ready", "o_valid"] + [f"t{label}_valid"
                                                    for label, _, _, _ in _taps(manifest)])
    lines += [
        '        if (give) $fwrite(fd, "O %0d %b\\n", cycle, o_payload);',
        '        if (take && first) $fwrite(fd, "I %0d\\n", cycle);',
        "        if (take) first <= 0;",
        f"        if ((^{{{handshakes}}}) === 1'bx && !xseen) begin",
        f'          $fwrite(fd, "X %0d %b\\n", cycle, {{{handshakes}}});',
        "          xseen <= 1; phase <= DONE; done <= 1; $fflush(fd);",
        "        end"]
    return "\n".join(lines)


_BODY = """  localparam JUNK = 0, RESET = 1, RUN = 2, TAIL = 3, DONE = 4;
  reg [2:0] phase = DONE;
  reg clk = 0;
  always #{half} clk = ~clk;
  reg i_valid = 0, o_ready = 0, acc_rst = 1, first = 1;
  reg [31:0] lfsr_i = 1, lfsr_o = 1, count = 0;
  wire i_ready, o_valid;
  integer fd;
  initial fd = $fopen("{log}", "w");
  always @(posedge load) $readmemh("{stimulus}", mem, 0, words + junk_words - 1);
{instance}
  wire take = i_valid & i_ready;
  wire give = o_valid & o_ready;
  wire [{bits}:0] next = addr + take;
  wire quiet = lfsr_i[31:16] < idle_thr;
  wire stall = lfsr_o[31:16] < bp_thr;
  always @(posedge clk) begin
    lfsr_i <= xorshift(lfsr_i);
    lfsr_o <= xorshift(lfsr_o);
    acc_rst <= 0;
    if (rst) begin
      phase <= reset_after != 0 ? JUNK : RUN;
      addr <= reset_after != 0 ? words : 0;
      last <= reset_after != 0 ? words + junk_words : words;
      acc_rst <= 1; i_valid <= 0; o_ready <= 0; first <= 1;
      lfsr_i <= seed | 1; lfsr_o <= (seed ^ 32'h9e3779b9) | 1;
      count <= 0; cycle <= 0; results <= 0; done <= 0; hang <= 0; xseen <= 0;
    end else case (phase)
      JUNK: begin
        addr <= next; i_valid <= next < last; o_ready <= 1;
        if (next < last) i_payload <= mem[next];
        count <= count + 1;
        if (count + 1 >= reset_after) phase <= RESET;
      end
      RESET: begin
        acc_rst <= 1; i_valid <= 0; o_ready <= 0;
        addr <= 0; last <= words; phase <= RUN;
      end
      RUN, TAIL: begin
        addr <= next; i_valid <= next < last && !quiet; o_ready <= !stall;
        if (next < last) i_payload <= mem[next];
        cycle <= cycle + 1;
        if (give) results <= results + 1;
        if (phase == RUN && give && results + 1 == samples) begin
          phase <= TAIL; count <= 0;
        end
        if (phase == TAIL) count <= count + 1;
        if (phase == TAIL && count + 1 == {tail}) begin
          phase <= DONE; done <= 1; $fflush(fd);
        end
        if (cycle + 1 >= max_cycles && phase == RUN) begin
          phase <= DONE; done <= 1; hang <= 1; $fflush(fd);
        end
{log_lines}
      end
      default: i_valid <= 0;
    endcase
  end
"""


def harness_verilog(manifest: dict, bits: int) -> str:
    """The harness module for the design of ``manifest`` with a stimulus memory of
    ``2**bits`` words."""
    ports = """module onespike_harness (
  input rst, input load,
  input [31:0] words, input [31:0] junk_words, input [31:0] samples,
  input [31:0] reset_after, input [31:0] max_cycles, input [31:0] seed,
  input [16:0] idle_thr, input [16:0] bp_thr,
  output reg done, output reg hang, output reg xseen,
  output reg [31:0] results, output reg [31:0] cycle);
"""
    body = _BODY.format(half=HALF_PERIOD_NS, log=LOG, stimulus=STIMULUS, instance=_instance(manifest), bits=bits,
                        tail=TAIL_CYCLES, log_lines=_log(manifest))
    return ("// generated by onespike.sim.harness: testbench harness around onespike_top\n"
            + ports + _XORSHIFT + _declarations(manifest, bits) + "\n" + body
            + "endmodule\n")


def harness_sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:12]
