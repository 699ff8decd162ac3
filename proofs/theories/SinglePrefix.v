(** single_prefix: one virtual position in closed form.  With prefix logit [l0], prefix
    value [u] ([W_V s], or a KV-prefix's free value) and [n >= 1] content keys:
    [A^pt_0 = e^l0 / (e^l0 + Z) = 1 / (1 + exp (ln Z - l0))] (a sigmoid),
    [A^pt_j = A_j (1 - A^pt_0)], [t^pt = A^pt_0 u + (1 - A^pt_0) t],
    [t^pt - t = A^pt_0 (u - t)] and [0 < A^pt_0 < 1]. *)

Require Import Reals Lra Lia.
Require Import PrefixTheory.Sums PrefixTheory.Linear PrefixTheory.Softmax.
Require Import PrefixTheory.RelativeAttention PrefixTheory.ConvexOutput.
Open Scope R_scope.

Definition one_logit (l0 : R) : nat -> R := fun _ => l0.
Definition one_value (u : vec) : nat -> vec := fun _ => u.

Theorem single_prefix (n : nat) (l0 : R) (lc : nat -> R) (u : vec) (vc : nat -> vec) :
  (0 < n)%nat ->
  let A0 := weight_pt 1 n (one_logit l0) lc 0 in
  A0 = exp l0 / (exp l0 + Z n lc) /\
  A0 = / (1 + exp (ln (Z n lc) - l0)) /\
  0 < A0 < 1 /\
  (forall j, (j < n)%nat -> weight_pt 1 n (one_logit l0) lc (1 + j) = softmax n lc j * (1 - A0)) /\
  (forall c, head_pt 1 n (one_logit l0) lc (one_value u) vc c = A0 * u c + (1 - A0) * head n lc vc c) /\
  (forall c, head_pt 1 n (one_logit l0) lc (one_value u) vc c - head n lc vc c =
             A0 * (u c - head n lc vc c)).
Proof.
  intros Hn A0.
  assert (HA0 : A0 = exp l0 / (exp l0 + Z n lc)).
  { unfold A0. rewrite weight_pt_prefix by lia. unfold Z at 1, one_logit. simpl. f_equal. ring. }
  assert (Hmass : prefix_mass 1 n (one_logit l0) lc = A0).
  { unfold prefix_mass. simpl. unfold A0. ring. }
  pose proof (exp_pos l0) as He. pose proof (Z_pos n lc Hn) as HZ.
  split; [exact HA0 |]. split.
  { rewrite HA0. unfold Rminus. rewrite exp_plus, exp_Ropp, exp_ln by exact HZ.
    field. split; lra. }
  split.
  { rewrite HA0. split.
    - apply Rdiv_lt_0_compat; lra.
    - apply (Rmult_lt_reg_r (exp l0 + Z n lc)); [lra |].
      unfold Rdiv. rewrite Rmult_assoc, Rinv_l by lra. lra. }
  split.
  { intros j Hj. rewrite <- Hmass. apply relative_attention; assumption. }
  split.
  { intro c. rewrite convex_output by exact Hn. rewrite Hmass. unfold bias. simpl.
    unfold one_value. fold A0. ring. }
  { intro c. rewrite convex_output by exact Hn. rewrite Hmass. unfold bias. simpl.
    unfold one_value. fold A0. ring. }
Qed.
