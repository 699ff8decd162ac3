(** position_shift: with a relative positional scheme, relative attention also survives the
    context SHIFTING the content by [np] positions; with absolute positions it does not.

    A positional scheme gives the logit of query [i] and key [j] (content indices) at
    positions [pi], [pj]; it is relative when shifting both positions by any [s] leaves the
    logit unchanged.  RoPE (any number of frequency pairs) and ALiBi are relative. *)

Require Import Reals Lra Lia.
Require Import PrefixTheory.Sums PrefixTheory.Linear PrefixTheory.Softmax.
Require Import PrefixTheory.RelativeAttention.
Open Scope R_scope.

Definition relative_scheme (lg : nat -> nat -> R -> R -> R) : Prop :=
  forall i j pi pj s, lg i j (pi + s) (pj + s) = lg i j pi pj.

(** Content at positions [np + j] after the context, at [j] in the run without it. *)
Theorem position_shift_relative (lg : nat -> nat -> R -> R -> R) (np n : nat) (lp : nat -> R)
    (i j : nat) :
  relative_scheme lg -> (0 < n)%nat -> (j < n)%nat ->
  let shifted := fun k => lg i k (INR (np + i)) (INR (np + k)) in
  let unshifted := fun k => lg i k (INR i) (INR k) in
  weight_pt np n lp shifted (np + j) = softmax n unshifted j * (1 - prefix_mass np n lp shifted).
Proof.
  intros Hrel Hn Hj shifted unshifted.
  rewrite relative_attention by assumption. f_equal.
  unfold softmax, shifted, unshifted.
  rewrite !plus_INR, (Rplus_comm (INR np) (INR i)), (Rplus_comm (INR np) (INR j)), Hrel.
  f_equal. apply Z_ext. intros k _. rewrite plus_INR, (Rplus_comm (INR np) (INR k)), Hrel.
  reflexivity.
Qed.

(** RoPE: frequency pair [f] of a query/key rotates coordinates [(2f, 2f+1)] by the angle
    [position * theta f]; the logit sums the pairs ([m] pairs: head dimension [2m]). *)
Definition rot_x (a x y : R) : R := cos a * x - sin a * y.
Definition rot_y (a x y : R) : R := sin a * x + cos a * y.

Definition rope_logit (m : nat) (theta : nat -> R) (q k : vec) (pi pj : R) : R :=
  sum m (fun f =>
    rot_x (pi * theta f) (q (2 * f)%nat) (q (2 * f + 1)%nat) *
      rot_x (pj * theta f) (k (2 * f)%nat) (k (2 * f + 1)%nat) +
    rot_y (pi * theta f) (q (2 * f)%nat) (q (2 * f + 1)%nat) *
      rot_y (pj * theta f) (k (2 * f)%nat) (k (2 * f + 1)%nat)).

(** [(R_a q) . (R_b k)] depends on [b - a] only. *)
Lemma rotation_pair (a b qx qy kx ky : R) :
  rot_x a qx qy * rot_x b kx ky + rot_y a qx qy * rot_y b kx ky =
  cos (b - a) * (qx * kx + qy * ky) + sin (b - a) * (qy * kx - qx * ky).
Proof.
  unfold rot_x, rot_y. rewrite cos_minus, sin_minus. ring.
Qed.

Theorem rope_relative (m : nat) (theta : nat -> R) (q k : vec) (pi pj s : R) :
  rope_logit m theta q k (pi + s) (pj + s) = rope_logit m theta q k pi pj.
Proof.
  unfold rope_logit. apply sum_ext. intros f _. rewrite !rotation_pair.
  replace ((pj + s) * theta f - (pi + s) * theta f) with (pj * theta f - pi * theta f) by ring.
  reflexivity.
Qed.

Theorem rope_scheme_relative (m : nat) (theta : nat -> R) (T : R) (q k : nat -> vec) :
  relative_scheme (fun i j pi pj => T * rope_logit m theta (q i) (k j) pi pj).
Proof. intros i j pi pj s. rewrite rope_relative. reflexivity. Qed.

(** ALiBi: a content logit minus a slope times the distance. *)
Theorem alibi_scheme_relative (content : nat -> nat -> R) (slope : R) :
  relative_scheme (fun i j pi pj => content i j - slope * Rabs (pi - pj)).
Proof.
  intros i j pi pj s. replace (pi + s - (pj + s)) with (pi - pj) by ring. reflexivity.
Qed.

(** Absolute positions (a position code added to the embedding), witness: for every shift
    [np >= 1] and every context, two content tokens (embedding 0, scalar position codes
    [p_t = t], logit [x_i x_j]) whose relative attention the shift changes. *)
Definition absolute_logit (emb : nat -> R) (i j : nat) (pi pj : R) : R :=
  (emb i + pi) * (emb j + pj).

Theorem position_shift_absolute_witness (np : nat) (lp : nat -> R) :
  (1 <= np)%nat ->
  let shifted := fun k => absolute_logit (fun _ => 0) 1 k (INR (np + 1)) (INR (np + k)) in
  let unshifted := fun k => absolute_logit (fun _ => 0) 1 k (INR 1) (INR k) in
  ~ (forall j, (j < 2)%nat ->
       weight_pt np 2 lp shifted (np + j) = softmax 2 unshifted j * (1 - prefix_mass np 2 lp shifted)).
Proof.
  intros Hnp shifted unshifted H.
  specialize (H 0%nat ltac:(lia)). rewrite relative_attention in H by lia.
  pose proof (prefix_mass_bounds np 2 lp shifted ltac:(lia)).
  apply Rmult_eq_reg_r in H; [| lra].
  apply softmax2_eq in H. unfold shifted, unshifted, absolute_logit in H.
  rewrite !plus_INR in H. simpl INR in H.
  assert (1 <= INR np) by (apply (le_INR 1 np) in Hnp; simpl in Hnp; exact Hnp).
  nra.
Qed.
