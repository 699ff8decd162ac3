"""Which Coq theorems prove each registered theorem, in what generality, and what is left out.

Keyed by the ids of the toolkit's theorem registry (``prefix-theory derive --list``), plus
``construction_thresholds`` (the §2 constructions' temperature conditions, which the registry
has no separate entry for).  Line counts and statements are read from the ``.v`` files.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from proofs.coq import ROOT
from proofs.errors import ProofsError


@dataclass(frozen=True)
class CoqEntry:
    theorem_id: str
    coq: tuple  # ((module, theorem name), ...): the first is the headline theorem
    general_in: str
    gap: str = ""  # what is not proved in Coq, and why ("" when nothing is left out)
    witness: bool = False  # a refuted claim, proved as an existence / counterexample statement
    registered: bool = True  # an id of the toolkit's theorem registry

    @property
    def modules(self) -> tuple:
        return tuple(dict.fromkeys(m for m, _ in self.coq))

    @property
    def names(self) -> tuple:
        return tuple(f"{m}.{n}" for m, n in self.coq)


ENTRIES = {
    e.theorem_id: e
    for e in (
        CoqEntry(
            "relative_attention",
            (
                ("RelativeAttention", "relative_attention"),
                ("RelativeAttention", "relative_attention_ratio"),
                ("Layer", "layer_relative_attention"),
                ("RelativeAttention", "prefix_outside_denominator_refuted"),
            ),
            "every number of content keys n >= 1 (the query's visible keys: any mask), of virtual "
            "positions n_p, any logits (any d, head dimension, temperature, positional scheme); "
            "per head of a layer with any number of heads H and any of the four context methods",
        ),
        CoqEntry(
            "convex_output",
            (
                ("ConvexOutput", "convex_output"),
                ("ConvexOutput", "convex_output_weights"),
                ("ConvexOutput", "convex_output_displacement"),
            ),
            "every n >= 1, n_p, value dimension (each coordinate), any logits and values",
        ),
        CoqEntry(
            "single_prefix",
            (("SinglePrefix", "single_prefix"),),
            "every n >= 1, value dimension, prefix logit and value (prefix or KV-prefix)",
        ),
        CoqEntry(
            "bias_span",
            (
                ("BiasSpan", "bias_cone"),
                ("BiasSpan", "bias_direction"),
                ("BiasSpan", "bias_span_head"),
                ("BiasSpan", "bias_span_heads"),
            ),
            "every n_p, H, value dimension d_v, model dimension, and n per input; 'at most n_p "
            "dimensions' is proved as: any n_p + 1 biases of a head (any H n_p + 1 after W_O) "
            "are linearly dependent",
            gap="The virtual values are the same for every input, as for a prefix or KV-prefix and "
            "for prompts in causal models (Layer.soft_prefix_universal_causal); a bidirectional "
            "encoder's prompt states depend on the content, where the numeric check expects the "
            "bound to fail and nothing is claimed.",
        ),
        CoqEntry(
            "pre_ln",
            (("Layer", "pre_ln"),),
            "any pre-attention norm (LayerNorm, RMSNorm, or the identity for post-LN and no-norm "
            "blocks), any key/value maps (with biases), every head, n >= 1, n_p",
        ),
        CoqEntry(
            "kv_converse",
            (
                ("KVConverse", "kv_converse"),
                ("KVConverse", "kv_converse_witness"),
                ("KVConverse", "kv_strictly_wider_when_wide"),
                ("KVConverse", "kv_converse_rotated"),
                ("Linear", "independent_iff_onto"),
            ),
            "every d_model, number of key/value heads G and d_head (W_K and W_V stack G d_head "
            "rows each), with biases b_K, b_V, and with an orthogonal positional rotation of the "
            "key (RoPE)",
            gap="The statement is about the attention input h; which h a pre-LN LayerNorm can "
            "output is not claimed (as in the numeric check).",
        ),
        CoqEntry(
            "hierarchy",
            (
                ("Layer", "hard_as_soft"),
                ("Layer", "soft_as_prefix"),
                ("Layer", "prefix_as_kv"),
                ("Layer", "soft_as_prefix_deep"),
                ("Layer", "soft_prefix_universal_causal"),
            ),
            "one layer with any H and any query/key/value/norm/output maps (so any d, biases, "
            "RoPE/ALiBi, grouped keys/values, pre-LN), every n, n_p; soft prompt as prefix in a "
            "model of any depth whose blocks are arbitrary functions of the sequence",
            gap="The one-layer inclusions hold by the definitions of the context methods (the "
            "wider method's input is built from the narrower one's); the deep statement models a "
            "block as any pointwise function of the states, not as the toolkit's block.",
        ),
        CoqEntry(
            "hierarchy_strict",
            (
                ("HierarchyStrict", "soft_not_hard"),
                ("HierarchyStrict", "prefix_not_soft"),
                ("KVConverse", "kv_converse_witness"),
            ),
            "soft vs hard: every vocabulary size V, embedding, position codes and content; prefix "
            "vs soft: one two-layer causal residual model; KV vs prefix: every rank-deficient "
            "[W_K; W_V]",
            witness=True,
        ),
        CoqEntry(
            "deeper_first_order",
            (
                ("DeeperFirstOrder", "deeper_first_order"),
                ("DeeperFirstOrder", "deeper_first_order_reals"),
                ("DeeperFirstOrder", "moved_logit_expansion"),
                ("DeeperFirstOrder", "central_difference_exact"),
                ("DeeperFirstOrder", "deeper_first_order_qk"),
            ),
            "every dimension d, bilinear form H = W_Q^T W_K, temperature T and activation changes "
            "d_i, d_j; query/key form for any head dimension (biases, RoPE)",
        ),
        CoqEntry(
            "deeper_attention_changes",
            (("DeeperAttention", "deeper_attention_changes"),),
            "one two-layer model, for every context of its second layer",
            witness=True,
        ),
        CoqEntry(
            "position_shift",
            (
                ("PositionShift", "position_shift_relative"),
                ("PositionShift", "rope_relative"),
                ("PositionShift", "rope_scheme_relative"),
                ("PositionShift", "alibi_scheme_relative"),
                ("PositionShift", "position_shift_absolute_witness"),
            ),
            "any relative scheme (RoPE with any number of frequency pairs and frequencies, ALiBi "
            "with any slope), every n >= 1, n_p, shift; absolute positions: a witness for every "
            "shift n_p >= 1 and every context",
        ),
        CoqEntry(
            "finetune_contrast",
            (
                ("FinetuneContrast", "finetune_contrast"),
                ("FinetuneContrast", "finetune_changes_relative_attention"),
            ),
            "every model dimension d, head dimension k, number of keys n >= 1, W_Q, orthogonal "
            "query rotation (the identity without RoPE), temperature; any context for the contrast",
        ),
        CoqEntry(
            "capacity",
            (
                ("Capacity", "capacity"),
                ("Capacity", "hard_token_at_most_V"),
                ("Capacity", "hard_prompt_at_most_V_pow"),
                ("Capacity", "hard_prompt_needs_V_tokens"),
                ("Capacity", "virtual_token_any_sequence"),
                ("Capacity", "capacity_maps"),
                ("Capacity", "hard_token_not_V_plus_1"),
            ),
            "hard tokens: any model and behaviour type, every V and prompt length n; virtual "
            "token: every V >= 2, N >= 2 and T above the threshold (V^N completions, V^V maps)",
            gap="The virtual-token counts are proved for the constructions' decoding computation "
            "(see construction_thresholds), not for their weight matrices.",
            witness=True,
        ),
        CoqEntry(
            "construction_thresholds",
            (
                ("Constructions", "unconditional_step"),
                ("Constructions", "unconditional_tight"),
                ("Constructions", "conditional_step"),
                ("Constructions", "decoder_margin"),
            ),
            "every V >= 2, N >= 1 (Theorem 1: e^T > (2V-3)N suffices, and is necessary), "
            "N0 >= 1 and response position r < N0 (Theorem 2 and longer responses: "
            "e^T > (4V-3)(2N0-1) suffices), every map table and every preceding valid tokens",
            gap="Modelled: the computation at one decoding query (the softmax head with the "
            "construction's logits and values, the MLP's ReLU slot selection, the scalar decoder). "
            "The weight matrices that realise it in the residual stream are those of "
            "constructions/ and are checked numerically there. Floating-point rounding and the "
            "two-token digit decoder are not covered.",
            registered=False,
        ),
    )
}

REGISTERED_IDS = tuple(i for i, e in ENTRIES.items() if e.registered)


def get_entry(theorem_id: str) -> CoqEntry:
    if theorem_id not in ENTRIES:
        raise ProofsError(f"unknown theorem {theorem_id!r}; expected one of: {', '.join(ENTRIES)}")
    return ENTRIES[theorem_id]


def module_path(module: str, source: Path = ROOT) -> Path:
    return Path(source) / "theories" / f"{module}.v"


def _span(module: str, name: str, source: Path = ROOT) -> tuple[list[str], int, int, int]:
    """(lines of the file, first line of the doc comment or declaration, declaration line,
    line of the closing Qed/Defined) of a theorem, 0-based."""
    lines = module_path(module, source).read_text().splitlines()
    decl = re.compile(
        r"^\s*(?:Theorem|Lemma|Corollary|Proposition|Fact|Remark)\s+" + re.escape(name) + r"\b"
    )
    start = next((i for i, line in enumerate(lines) if decl.match(line)), None)
    if start is None:
        raise ProofsError(f"no theorem {name!r} in {module_path(module, source)}")
    end = next(
        i for i in range(start, len(lines)) if re.search(r"\b(Qed|Defined|Admitted)\.", lines[i])
    )
    doc = start
    if doc > 0 and lines[doc - 1].rstrip().endswith("*)"):
        doc -= 1
        while doc > 0 and "(**" not in lines[doc]:
            doc -= 1
    return lines, doc, start, end


def theorem_lines(module: str, name: str, source: Path = ROOT) -> int:
    """Lines of a theorem: statement and proof, up to its Qed."""
    _, _, start, end = _span(module, name, source)
    return end - start + 1


def theorem_statement(module: str, name: str, source: Path = ROOT) -> str:
    """The Coq text of a theorem's statement, with its doc comment."""
    lines, doc, start, end = _span(module, name, source)
    proof = next((i for i in range(start, end + 1) if re.match(r"^\s*Proof\b", lines[i])), end + 1)
    return "\n".join(lines[doc:proof]).rstrip()


def entry_lines(theorem_id: str, source: Path = ROOT) -> int:
    return sum(theorem_lines(m, n, source) for m, n in get_entry(theorem_id).coq)


def file_lines(module: str, source: Path = ROOT) -> int:
    return len(module_path(module, source).read_text().splitlines())


def coq_statement(theorem_id: str, source: Path = ROOT) -> str:
    """The Coq statements of a registered theorem (for ``derive`` to show beside the sympy
    steps): file and name of each Coq theorem, then its text."""
    entry = get_entry(theorem_id)
    parts = [f"Coq ({', '.join(entry.modules)}; general in: {entry.general_in})"]
    for module, name in entry.coq:
        parts.append(
            f"-- proofs/theories/{module}.v: {name}\n{theorem_statement(module, name, source)}"
        )
    if entry.gap:
        parts.append(f"Not proved in Coq: {entry.gap}")
    return "\n\n".join(parts)
