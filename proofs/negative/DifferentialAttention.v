(** Negative control (coqc must reject this file): relative attention claimed for
    differential attention, the difference of two softmaxes [softmax(a) - lam softmax(b)].

    The first theorem is [relative_attention_ratio] (true for one softmax) with its proof
    script; the second applies the same script to the differential weights.  coqc accepts
    the first and must fail inside the proof of the second (the development proves the claim
    false: [differential_not_relative]). *)

Require Import Reals Lra Lia.
Require Import PrefixTheory.Sums PrefixTheory.Softmax PrefixTheory.Differential.
Open Scope R_scope.

Theorem relative_attention_ratio_twin (np n : nat) (lp lc : nat -> R) (j k : nat) :
  (0 < n)%nat ->
  weight_pt np n lp lc (np + j) / weight_pt np n lp lc (np + k) =
  softmax n lc j / softmax n lc k.
Proof.
  intro Hn. rewrite !weight_pt_content. unfold softmax.
  pose proof (Z_nonneg np lp). pose proof (Z_pos n lc Hn).
  pose proof (exp_pos (lc k)).
  field. repeat split; lra.
Qed.

Theorem differential_relative_attention (np n : nat) (lpa la lpb lb : nat -> R) (lam : R) (j k : nat) :
  (0 < n)%nat ->
  diff_weight_pt np n lpa la lpb lb lam (np + j) / diff_weight_pt np n lpa la lpb lb lam (np + k) =
  diff_weight n la lb lam j / diff_weight n la lb lam k.
Proof.
  intro Hn. unfold diff_weight_pt, diff_weight. rewrite !weight_pt_content. unfold softmax.
  pose proof (Z_nonneg np lpa). pose proof (Z_pos n la Hn).
  pose proof (Z_nonneg np lpb). pose proof (Z_pos n lb Hn).
  pose proof (exp_pos (la k)). pose proof (exp_pos (lb k)).
  field. repeat split; lra.
Qed.
