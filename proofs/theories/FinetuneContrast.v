(** finetune_contrast: a rank-1 update of [W_Q] changes relative attention; no context can.

    A head with model dimension [d] and head dimension [k]: the query of input [h] is
    [R (W_Q h)] ([R] the query's positional rotation, orthogonal: [R R^T = I]; the identity
    without RoPE), the logit to content key [j] is [T (R W_Q h) . k_j].  For [h <> 0] and two
    content keys [k_1 <> k_2], the rank-1 update [W_Q + a b^T] with [b = h / |h|^2] and
    [a = R^T (k_1 - k_2) / |k_1 - k_2|^2] raises [l_1 - l_2] by exactly [T], so it multiplies
    [A_1 / A_2] by [exp T]; a context leaves every such ratio unchanged. *)

Require Import Reals Lra Lia.
Require Import PrefixTheory.Sums PrefixTheory.Linear PrefixTheory.Softmax.
Require Import PrefixTheory.RelativeAttention.
Open Scope R_scope.

Definition vsub (u v : vec) : vec := fun c => u c - v c.

Definition logits (d k : nat) (T : R) (Rm WQ : mat) (h : vec) (kc : nat -> vec) : nat -> R :=
  fun j => T * dot k (mv k Rm (mv d WQ h)) (kc j).

Definition rank1_update (d k : nat) (Rm WQ : mat) (h k1 k2 : vec) : mat :=
  let w := vsub k1 k2 in
  let a := mv k (transpose Rm) (vscale (/ dot k w w) w) in
  let b := vscale (/ dot d h h) h in
  fun r c => WQ r c + a r * b c.

Lemma rank1_logit_shift (d k : nat) (T : R) (Rm WQ : mat) (h : vec) (kc : nat -> vec)
    (j1 j2 j : nat) :
  orthogonal k Rm -> dot d h h <> 0 ->
  let w := vsub (kc j1) (kc j2) in
  logits d k T Rm (rank1_update d k Rm WQ h (kc j1) (kc j2)) h kc j =
  logits d k T Rm WQ h kc j + T * dot k (vscale (/ dot k w w) w) (kc j).
Proof.
  intros Horth Hh w. unfold logits.
  set (a := mv k (transpose Rm) (vscale (/ dot k w w) w)).
  assert (Hq : forall r, mv d (rank1_update d k Rm WQ h (kc j1) (kc j2)) h r = mv d WQ h r + a r).
  { intro r. unfold mv at 1, rank1_update. fold w. fold a.
    rewrite (sum_ext d _ (fun c => WQ r c * h c + a r * (/ dot d h h * (h c * h c))))
      by (intros; unfold vscale; ring).
    rewrite sum_plus, sum_scal_l, sum_scal_l. fold (dot d h h). unfold mv.
    field. exact Hh. }
  assert (Hrot : forall r, (r < k)%nat ->
            mv k Rm (mv d (rank1_update d k Rm WQ h (kc j1) (kc j2)) h) r =
            mv k Rm (mv d WQ h) r + vscale (/ dot k w w) w r).
  { intros r Hr. unfold mv at 1. rewrite (sum_ext k _ (fun c => Rm r c * mv d WQ h c + Rm r c * a c))
      by (intros; rewrite Hq; ring).
    rewrite sum_plus. f_equal. unfold a. apply Horth, Hr. }
  unfold dot at 1. rewrite (sum_ext k _ (fun c => mv k Rm (mv d WQ h) c * kc j c
                                             + vscale (/ dot k w w) w c * kc j c))
    by (intros c Hc; rewrite Hrot by exact Hc; ring).
  rewrite sum_plus. unfold dot. ring.
Qed.

Theorem finetune_contrast (d k n : nat) (T : R) (Rm WQ : mat) (h : vec) (kc : nat -> vec)
    (j1 j2 : nat) :
  orthogonal k Rm -> dot d h h <> 0 -> dot k (vsub (kc j1) (kc j2)) (vsub (kc j1) (kc j2)) <> 0 ->
  (0 < n)%nat ->
  let l := logits d k T Rm WQ h kc in
  let l' := logits d k T Rm (rank1_update d k Rm WQ h (kc j1) (kc j2)) h kc in
  l' j1 - l' j2 = l j1 - l j2 + T /\
  softmax n l' j1 / softmax n l' j2 = exp T * (softmax n l j1 / softmax n l j2) /\
  (forall np lp, weight_pt np n lp l (np + j1) / weight_pt np n lp l (np + j2) =
                 softmax n l j1 / softmax n l j2).
Proof.
  intros Horth Hh Hw Hn l l'.
  assert (Hdiff : l' j1 - l' j2 = l j1 - l j2 + T).
  { unfold l, l'. rewrite !(rank1_logit_shift d k T Rm WQ h kc j1 j2) by assumption.
    set (w := vsub (kc j1) (kc j2)) in *.
    assert (Hd : dot k (vscale (/ dot k w w) w) (kc j1) - dot k (vscale (/ dot k w w) w) (kc j2) = 1).
    { rewrite !dot_scale_l, <- Rmult_minus_distr_l.
      replace (dot k w (kc j1) - dot k w (kc j2)) with (dot k w w).
      - field. exact Hw.
      - unfold dot. rewrite <- sum_minus. apply sum_ext. intros. unfold w, vsub. ring. }
    assert (T * dot k (vscale (/ dot k w w) w) (kc j1) - T * dot k (vscale (/ dot k w w) w) (kc j2) = T)
      by (rewrite <- Rmult_minus_distr_l, Hd; ring).
    lra. }
  split; [exact Hdiff |]. split.
  - rewrite !softmax_ratio by exact Hn. rewrite Hdiff, <- exp_plus. f_equal. ring.
  - intros np lp. apply relative_attention_ratio, Hn.
Qed.

(** So with [T <> 0] the update changes the ratio of two content weights, which no context
    changes. *)
Corollary finetune_changes_relative_attention (d k n : nat) (T : R) (Rm WQ : mat) (h : vec)
    (kc : nat -> vec) (j1 j2 : nat) :
  orthogonal k Rm -> dot d h h <> 0 -> dot k (vsub (kc j1) (kc j2)) (vsub (kc j1) (kc j2)) <> 0 ->
  (0 < n)%nat -> T <> 0 ->
  let l := logits d k T Rm WQ h kc in
  let l' := logits d k T Rm (rank1_update d k Rm WQ h (kc j1) (kc j2)) h kc in
  softmax n l' j1 / softmax n l' j2 <> softmax n l j1 / softmax n l j2.
Proof.
  intros Horth Hh Hw Hn HT l l' Heq.
  destruct (finetune_contrast d k n T Rm WQ h kc j1 j2 Horth Hh Hw Hn) as [_ [Hr _]].
  fold l l' in Hr. rewrite Heq in Hr.
  rewrite softmax_ratio in Hr by exact Hn.
  pose proof (exp_pos (l j1 - l j2)).
  assert (exp T = 1) by (apply (Rmult_eq_reg_r (exp (l j1 - l j2))); lra).
  apply HT. rewrite <- exp_0 in H0. apply exp_inv in H0. exact H0.
Qed.
