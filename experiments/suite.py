"""The experiments of docs/theory.md §4 (the paper's table) and the appendix observation.

Each experiment takes a :class:`experiments.runner.Runner` and returns a JSON-able
record: ``rows`` (what was trained, parameter count, steps, accuracy per task, the
paper's figures), ``claims`` (the qualitative statement, our value, the target) and
``evidence`` (residuals, PNG files).  Paper figures are accuracies in [0, 1].
"""

from __future__ import annotations

import os

import numpy as np

from experiments.adapt import Adaptation, init_trainable
from experiments.evidence import attention_maps, bias_plot, prefix_attention
from experiments.models import make_arch
from experiments.runner import Runner, claim, row, timed
from experiments.tasks import RANDOM_TASKS
from theory.errors import unknown_name

N_P_ATTN = 1  # new-attention experiment: one prefix position (paper n_p = 1)
N_P_ELICIT = 4  # elicitation: four prefix positions (the paper does not state n_p here)
N_P_COMBINE = 10  # combine model (paper n_p = 10)
N_P_LORA = 12  # LoRA row: its own base model and prefix (paper n_p = 12)
# The companion code puts LoRA on every layer whose minGPT name contains "c_fc" or "c_proj":
# the MLP's W_in and W_out and also the attention output W_O (hence 12,288 = 4 x 12 x 256).
LORA_TARGETS = ("mlp", "W_O")
PAPER_ATTN_STEPS = {"pretrain": 20000, "finetune": 10000, "prefix": 40000}
FOUR = list(RANDOM_TASKS)


def _arch_attn(r):
    return make_arch(f"attn-1L1H-d{r.cfg.d_attn}", 1, 1, r.cfg.d_attn)


def _arch_elicit(r):
    return make_arch(
        f"elicit-1L4H-d{r.cfg.d_elicit}-noLN", 1, 4, r.cfg.d_elicit, ln_before_attention=False
    )


def _arch_combine(r):
    L = r.cfg.layers_combine
    return make_arch(f"combine-{L}L4H-d{r.cfg.d_combine}", L, 4, r.cfg.d_combine)


def _png(r, name):
    os.makedirs(r.out, exist_ok=True)
    return os.path.join(r.out, name)


@timed
def new_attention(r: Runner) -> dict:
    """A prefix cannot learn a task needing a new attention pattern; full fine-tuning can."""
    arch = _arch_attn(r)
    tasks = ["ascending", "descending"]
    base, binfo = r.pretrained(arch, "ascending", r.cfg.pre_attn, N_P_ATTN)
    pre = Adaptation("pretrain", N_P_ATTN)
    ft_ad, pf_ad, kv_ad = (
        Adaptation("finetune", N_P_ATTN),
        Adaptation("prefix", N_P_ATTN),
        Adaptation("kv_prefix", N_P_ATTN),
    )
    ft, finfo = r.adapted(arch, base, binfo, ft_ad, "descending", r.cfg.ft_attn)
    pf, pinfo = r.adapted(arch, base, binfo, pf_ad, "descending", r.cfg.prefix_attn)
    kv, kinfo = r.adapted(arch, base, binfo, kv_ad, "descending", r.cfg.prefix_attn)
    acc_base = r.evaluate(arch, pre, base, base, tasks)
    acc_ft = r.evaluate(arch, ft_ad, base, ft, tasks)
    acc_pf = r.evaluate(arch, pf_ad, base, pf, tasks)
    acc_kv = r.evaluate(arch, kv_ad, base, kv, tasks)
    rows = [
        row(
            "pretrain on ascending", binfo, acc_base, {"ascending": 0.914, "descending": 0.0}, 20000
        ),
        row(
            "full fine-tune on descending",
            finfo,
            acc_ft,
            {"descending": 0.849, "ascending": 0.0},
            10000,
        ),
        row(
            f"prefix n_p={N_P_ATTN} on descending",
            pinfo,
            acc_pf,
            {"descending": 0.0, "ascending": 0.001},
            40000,
        ),
        row(
            f"KV-prefix n_p={N_P_ATTN} on descending (not in the paper)", kinfo, acc_kv, None, None
        ),
    ]
    claims = [
        claim("full fine-tuning learns descending", acc_ft["descending"], ">=", 0.80),
        claim("a prefix cannot learn descending", acc_pf["descending"], "<=", 0.05),
        claim("a KV-prefix cannot learn descending either", acc_kv["descending"], "<=", 0.05),
    ]
    evidence = attention_maps(
        arch,
        base,
        ft,
        pf["states"],
        r.x_test[0],
        "descending",
        _png(r, "new_attention_maps.png"),
        N_P_ATTN,
    )
    evidence["png"] = "new_attention_maps.png"
    return {
        "name": "new_attention",
        "title": "New attention pattern (1 layer, 1 head)",
        "model": f"1 layer, 1 head, d_model {arch.d_model}, pre-LN (paper: d 96)",
        "rows": rows,
        "claims": claims,
        "evidence": evidence,
    }


@timed
def elicit(r: Runner) -> dict:
    """A prefix elicits one of the skills a model was pretrained on (the random mixture)."""
    arch = _arch_elicit(r)
    tasks = FOUR
    base, binfo = r.pretrained(arch, "random", r.cfg.pre_elicit, N_P_ELICIT)
    acc_base = r.evaluate(arch, Adaptation("pretrain", N_P_ELICIT), base, base, tasks)
    paper_base = dict(zip(FOUR, (0.31, 0.19, 0.30, 0.16), strict=True))
    paper_pf = dict(zip(FOUR, (0.941, 0.837, 0.996, 0.998), strict=True))
    rows = [row("pretrain on random (no prefix)", binfo, acc_base, paper_base, 20000)]
    matrix, claims, states = {}, [], {}
    ad = Adaptation("prefix", N_P_ELICIT)
    for task in FOUR:
        pf, info = r.adapted(arch, base, binfo, ad, task, r.cfg.prefix_elicit)
        accs = r.evaluate(arch, ad, base, pf, tasks)
        matrix[task] = accs
        states[task] = pf["states"]
        rows.append(
            row(f"prefix n_p={N_P_ELICIT} on {task}", info, accs, {task: paper_pf[task]}, 30000)
        )
        claims.append(claim(f"prefix elicits {task}", accs[task], ">=", 0.90))
    off = max(matrix[p][t] for p in FOUR for t in FOUR if p != t)
    evidence = bias_plot(arch, base, states, r.x_test[:300], _png(r, "elicit_bias.png"))
    evidence["png"] = "elicit_bias.png"
    evidence["max_off_diagonal_accuracy"] = off
    return {
        "name": "elicit",
        "title": "Eliciting a pretrained skill (1 layer, 4 heads, no LayerNorm)",
        "model": f"1 layer, 4 heads, d_model {arch.d_model}, no LayerNorm at all (paper: d 256, "
        "no LN before attention)",
        "rows": rows,
        "claims": claims,
        "cross_task": matrix,
        "evidence": evidence,
    }


def _combine_base(r):
    arch = _arch_combine(r)
    base, binfo = r.pretrained(arch, "random", r.cfg.pre_combine, N_P_COMBINE)
    return arch, base, binfo


@timed
def combine(r: Runner) -> dict:
    """Prefixes combine pretrained skills (ascending_add1) but cannot learn a new one
    (double_hist)."""
    arch, base, binfo = _combine_base(r)
    tasks = FOUR + ["ascending_add1", "double_hist"]
    acc_base = r.evaluate(arch, Adaptation("pretrain", N_P_COMBINE), base, base, tasks)
    rows = [row("pretrain on random (no prefix)", binfo, acc_base, None, 40000)]
    ad = Adaptation("prefix", N_P_COMBINE)
    matrix, claims = {}, []
    paper_pf = dict(zip(FOUR, (0.997, 0.996, 1.0, 1.0), strict=True))
    for task in FOUR:
        pf, info = r.adapted(arch, base, binfo, ad, task, r.cfg.prefix_combine)
        matrix[task] = r.evaluate(arch, ad, base, pf, tasks)
        rows.append(
            row(
                f"prefix n_p={N_P_COMBINE} on {task}",
                info,
                matrix[task],
                {task: paper_pf[task]},
                None,
            )
        )
        claims.append(claim(f"prefix elicits {task}", matrix[task][task], ">=", 0.90))
    for task, paper, steps in (("ascending_add1", 0.716, 500000), ("double_hist", 0.006, 500000)):
        pf, info = r.adapted(arch, base, binfo, ad, task, r.cfg.prefix_new)
        matrix[task] = r.evaluate(arch, ad, base, pf, tasks)
        rows.append(
            row(f"prefix n_p={N_P_COMBINE} on {task}", info, matrix[task], {task: paper}, steps)
        )
    claims.append(
        claim(
            "a prefix clearly learns ascending_add1 (a combination of pretrained skills)",
            matrix["ascending_add1"]["ascending_add1"],
            ">=",
            0.50,
        )
    )
    claims.append(
        claim(
            "a prefix cannot learn double_hist (a new skill)",
            matrix["double_hist"]["double_hist"],
            "<=",
            0.05,
        )
    )
    return {
        "name": "combine",
        "title": f"Combining skills ({arch.n_layers} layers, 4 heads)",
        "model": f"{arch.n_layers} layers, 4 heads, d_model {arch.d_model}, pre-LN, "
        f"n_p={N_P_COMBINE} (paper: 4 layers, d 256)",
        "rows": rows,
        "claims": claims,
        "cross_task": matrix,
    }


def _lora_init_text(cfg) -> str:
    if cfg.lora_init == "gradient":
        return (
            f"A initialised along the top left singular vector of the full weight gradient, "
            f"norm {cfg.lora_init_scale:g} (B = 0)"
        )
    return f"A initialised with std {cfg.lora_init_scale:g} / sqrt(d_in) (B = 0)"


def _lora_base(r):
    arch = make_arch(
        f"lora-{r.cfg.layers_combine}L4H-d{r.cfg.d_lora}", r.cfg.layers_combine, 4, r.cfg.d_lora
    )
    base, binfo = r.pretrained(arch, "random", r.cfg.pre_lora, N_P_LORA)
    return arch, base, binfo


@timed
def lora(r: Runner) -> dict:
    """With the same number of parameters, rank-1 LoRA learns double_hist; a prefix does not.

    As in the companion code (notebook 04): a base model pretrained on ``random`` with
    ``n_p = 12`` zero-token slots; a prefix of 12 positions against rank-1 LoRA on the
    matrices whose minGPT names contain ``c_fc`` or ``c_proj`` (W_in, W_out and the
    attention output W_O), both ``12 * n_layers * d`` parameters (12,288 at d = 256).
    """
    arch, base, binfo = _lora_base(r)
    tasks = ["double_hist"]
    pf_ad = Adaptation("prefix", N_P_LORA)
    lo_ad = Adaptation(
        "lora",
        N_P_LORA,
        rank=1,
        targets=LORA_TARGETS,
        init_scale=r.cfg.lora_init_scale,
        init=r.cfg.lora_init,
    )
    ft_ad = Adaptation("finetune", N_P_LORA)
    # the row's claim first: LoRA, then the prefix and the fine-tuning reference
    lo, linfo = r.adapted(arch, base, binfo, lo_ad, "double_hist", r.cfg.lora)
    pf, pinfo = r.adapted(arch, base, binfo, pf_ad, "double_hist", r.cfg.prefix_lora)
    ft, finfo = r.adapted(arch, base, binfo, ft_ad, "double_hist", r.cfg.ft_lora)
    acc_base = r.evaluate(arch, Adaptation("pretrain", N_P_LORA), base, base, FOUR + tasks)
    acc_pf = r.evaluate(arch, pf_ad, base, pf, tasks)
    acc_lo = r.evaluate(arch, lo_ad, base, lo, tasks)
    acc_ft = r.evaluate(arch, ft_ad, base, ft, tasks)
    rows = [
        row("pretrain on random (no prefix)", binfo, acc_base, {"double_hist": 0.0}, 40000),
        row(f"prefix n_p={N_P_LORA} on double_hist", pinfo, acc_pf, {"double_hist": 0.003}, 100000),
        row(
            "rank-1 LoRA on W_in, W_out, W_O (c_fc, c_proj), double_hist",
            linfo,
            acc_lo,
            {"double_hist": 0.924},
            10000,
        ),
        row(
            "full fine-tune on double_hist (reference, not in the paper)", finfo, acc_ft, None, None
        ),
    ]
    claims = [
        claim("a prefix cannot learn double_hist", acc_pf["double_hist"], "<=", 0.05),
        claim(
            "rank-1 LoRA with the same parameter count learns double_hist",
            acc_lo["double_hist"],
            ">=",
            0.80,
        ),
        claim(
            "parameter counts are equal (|prefix - LoRA|)",
            float(abs(pinfo["n_params"] - linfo["n_params"])),
            "<=",
            0.0,
        ),
        claim(
            "full fine-tuning learns double_hist (the task is learnable by changing weights)",
            acc_ft["double_hist"],
            ">=",
            0.80,
        ),
    ]
    return {
        "name": "lora",
        "title": "Same parameter count, other method (LoRA)",
        "model": f"{arch.n_layers} layers, 4 heads, d_model {arch.d_model}, pre-LN, pretrained "
        f"with n_p={N_P_LORA} (paper: d 256); prefix {N_P_LORA} x {arch.n_layers} layers x d = "
        f"{pinfo['n_params']} parameters; "
        f"rank-1 LoRA on W_in, W_out, W_O = {arch.n_layers} x 12 d = {linfo['n_params']} "
        f"(paper: both 12,288), {_lora_init_text(r.cfg)}",
        "rows": rows,
        "claims": claims,
    }


@timed
def prefix_attention_exp(r: Runner) -> dict:
    """Appendix: the attention a query gives to the prefix positions is far from uniform."""
    arch, base, binfo = _combine_base(r)
    ad = Adaptation("prefix", N_P_COMBINE)
    states = {
        task: r.adapted(arch, base, binfo, ad, task, r.cfg.prefix_combine)[0]["states"]
        for task in FOUR
    }
    # reference: the untrained prefix (the base model's own zero-token states, where training
    # starts)
    states["zero tokens (untrained)"] = init_trainable(ad, arch, base, None)["states"]
    stats = prefix_attention(arch, base, states, r.x_test[:256], _png(r, "prefix_attention.png"))
    median = float(np.median([stats[t]["median_max_share_x_np"] for t in FOUR]))
    claims = [
        claim(
            "attention over prefix positions is not uniform: the most attended position gets at "
            "least twice the uniform share (median over heads and prefixes)",
            median,
            ">=",
            2.0,
        )
    ]
    return {
        "name": "prefix_attention",
        "title": "Appendix: attention over the prefix positions",
        "model": f"the combine model's per-task prefixes (n_p={N_P_COMBINE})",
        "rows": [],
        "claims": claims,
        "evidence": {"per_prefix": stats, "png": "prefix_attention.png"},
    }


EXPERIMENTS = {
    "new_attention": new_attention,
    "elicit": elicit,
    "combine": combine,
    "lora": lora,
    "prefix_attention": prefix_attention_exp,
}


def get_experiment(name: str):
    if name not in EXPERIMENTS:
        raise unknown_name("experiment", name, list(EXPERIMENTS) + ["all"])
    return EXPERIMENTS[name]
