(** Differential attention (the difference of two softmaxes, [softmax(a) - lam softmax(b)],
    docs/theory.md §5.2) does not have the prefix property: a context can change the ratio of
    two content weights.  Refuted claim, the differential analogue of
    [relative_attention_ratio]; the counterexample: two content keys with logits [a = (0, 0)],
    [b = (0, 1)], [lam = 1/2], one virtual position with logit 0 in both softmaxes.  What holds
    instead: each map keeps relative attention with its own prefix share, and the output is the
    difference of two convex combinations ([differential_each_map], [differential_output]). *)

Require Import Reals Lra Lia.
Require Import PrefixTheory.Sums PrefixTheory.Linear PrefixTheory.Softmax.
Require Import PrefixTheory.RelativeAttention PrefixTheory.ConvexOutput.
Open Scope R_scope.

Definition diff_weight (n : nat) (la lb : nat -> R) (lam : R) (j : nat) : R :=
  softmax n la j - lam * softmax n lb j.

Definition diff_weight_pt (np n : nat) (lpa la lpb lb : nat -> R) (lam : R) (j : nat) : R :=
  weight_pt np n lpa la j - lam * weight_pt np n lpb lb j.

Theorem differential_not_relative :
  ~ (forall (np n : nat) (lpa la lpb lb : nat -> R) (lam : R) (j k : nat),
       (0 < n)%nat ->
       diff_weight_pt np n lpa la lpb lb lam (np + j) / diff_weight_pt np n lpa la lpb lb lam (np + k) =
       diff_weight n la lb lam j / diff_weight n la lb lam k).
Proof.
  intro H.
  set (b := fun j : nat => if Nat.eqb j 0 then 0 else 1).
  specialize (H 1%nat 2%nat (fun _ => 0) (fun _ => 0) (fun _ => 0) b (1 / 2) 0%nat 1%nat ltac:(lia)).
  unfold diff_weight_pt, diff_weight in H. rewrite !weight_pt_content in H.
  unfold softmax, Z, b in H. simpl in H. rewrite !exp_0 in H.
  assert (HE : 1 < exp 1)
    by (pose proof (exp_increasing 0 1 ltac:(lra)) as He; rewrite exp_0 in He; exact He).
  set (E := exp 1) in *.
  replace (1 / (0 + 1 + (0 + 1 + 1)) - 1 / 2 * (1 / (0 + 1 + (0 + 1 + E))))
    with ((2 * E + 1) / (6 * (2 + E))) in H by (field; lra).
  replace (1 / (0 + 1 + (0 + 1 + 1)) - 1 / 2 * (E / (0 + 1 + (0 + 1 + E))))
    with ((4 - E) / (6 * (2 + E))) in H by (field; lra).
  replace (1 / (0 + 1 + 1) - 1 / 2 * (1 / (0 + 1 + E))) with (E / (2 * (1 + E))) in H by (field; lra).
  replace (1 / (0 + 1 + 1) - 1 / 2 * (E / (0 + 1 + E))) with (1 / (2 * (1 + E))) in H by (field; lra).
  replace (E / (2 * (1 + E)) / (1 / (2 * (1 + E)))) with E in H by (field; lra).
  destruct (Req_EM_T E 4) as [H4 | H4].
  - rewrite H4 in H. replace ((4 - 4) / (6 * (2 + 4))) with 0 in H by field.
    unfold Rdiv at 1 in H. rewrite Rinv_0, Rmult_0_r in H. lra.
  - replace ((2 * E + 1) / (6 * (2 + E)) / ((4 - E) / (6 * (2 + E)))) with ((2 * E + 1) / (4 - E))
      in H by (field; split; lra).
    assert (Hq : 2 * E + 1 = E * (4 - E)).
    { apply (Rmult_eq_reg_r (/ (4 - E))); [| apply Rinv_neq_0_compat; lra].
      rewrite Rmult_assoc, Rinv_r by lra. fold (Rdiv (2 * E + 1) (4 - E)). lra. }
    nra.
Qed.

(** What does hold: each softmax map keeps relative attention with its own prefix share ... *)
Theorem differential_each_map (np n : nat) (lpa la lpb lb : nat -> R) (j : nat) :
  (0 < n)%nat -> (j < n)%nat ->
  weight_pt np n lpa la (np + j) = softmax n la j * (1 - prefix_mass np n lpa la) /\
  weight_pt np n lpb lb (np + j) = softmax n lb j * (1 - prefix_mass np n lpb lb).
Proof. intros Hn Hj. split; apply relative_attention; assumption. Qed.

(** ... and the head output is the difference of two convex combinations of the virtual
    values [vp] and the output without context (every coordinate [c]). *)
Theorem differential_output (np n : nat) (lpa la lpb lb : nat -> R) (lam : R)
    (vp vc : nat -> vec) (c : nat) :
  (0 < n)%nat ->
  head_pt np n lpa la vp vc c - lam * head_pt np n lpb lb vp vc c =
  (bias np n lpa la vp c + (1 - prefix_mass np n lpa la) * head n la vc c) -
  lam * (bias np n lpb lb vp c + (1 - prefix_mass np n lpb lb) * head n lb vc c).
Proof. intro Hn. rewrite !convex_output by exact Hn. reflexivity. Qed.
