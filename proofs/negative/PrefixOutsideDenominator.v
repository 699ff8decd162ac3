(** Negative control (coqc must reject this file): relative attention claimed for a softmax
    whose denominator leaves the virtual positions out.

    The first theorem is [relative_attention] (true) with its proof script written out; the
    second applies the same script to the false variant, where the content weight of key [j]
    is [exp (lc j) / Z n lc] and the prefix "mass" is [sum_p exp (lp p) / Z n lc].  coqc
    accepts the first and must fail inside the proof of the second (the development proves
    the claim false: [prefix_outside_denominator_refuted]). *)

Require Import Reals Lra Lia.
Require Import PrefixTheory.Sums PrefixTheory.Softmax PrefixTheory.RelativeAttention.
Open Scope R_scope.

Theorem relative_attention_twin (np n : nat) (lp lc : nat -> R) (j : nat) :
  (0 < n)%nat -> (j < n)%nat ->
  weight_pt np n lp lc (np + j) = softmax n lc j * (1 - prefix_mass np n lp lc).
Proof.
  intros Hn _.
  unfold prefix_mass, weight_pt, softmax. rewrite cat_content, Z_cat.
  rewrite (sum_ext np _ (fun p => exp (lp p) / (Z np lp + Z n lc)))
    by (intros p Hp; rewrite cat_prefix by exact Hp; reflexivity).
  rewrite sum_div. fold (Z np lp).
  pose proof (Z_nonneg np lp). pose proof (Z_pos n lc Hn).
  field. split; lra.
Qed.

Theorem relative_attention_outside_denominator (np n : nat) (lp lc : nat -> R) (j : nat) :
  (0 < n)%nat -> (j < n)%nat ->
  weight_outside np n lp lc (np + j) = softmax n lc j * (1 - prefix_mass_outside np n lp lc).
Proof.
  intros Hn _.
  unfold prefix_mass_outside, weight_outside, softmax. rewrite cat_content.
  rewrite (sum_ext np _ (fun p => exp (lp p) / Z n lc))
    by (intros p Hp; rewrite cat_prefix by exact Hp; reflexivity).
  rewrite sum_div. fold (Z np lp).
  pose proof (Z_nonneg np lp). pose proof (Z_pos n lc Hn).
  field. split; lra.
Qed.
