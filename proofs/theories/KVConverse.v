(** kv_converse: a KV-prefix is a hidden-state prefix exactly when the stacked matrix
    [M = [W_K; W_V]] has linearly independent rows.

    The keys and values of all key/value heads of a layer come from one attention input
    [h] (the state, or [LN s] pre-LN): [k = W_K h + b_K], [v = W_V h + b_V], where [W_K]
    stacks the [rk = G d_head] key rows of the [G] key/value heads and [W_V] the [rv] value
    rows.  Every free [(k, v)] is reached by some [h] iff the [rk + rv] rows of [M] are
    independent; otherwise an explicit [(k, v)] is reached by none (the KV-prefix is strictly
    wider), which is always the case when [rk + rv > d_model].  General in [d_model], [G],
    [d_head]; with a positional rotation of the key ([R_p] of RoPE, orthogonal) the same holds
    ([kv_converse_rotated]). *)

Require Import Reals Lra Lia.
Require Import PrefixTheory.Sums PrefixTheory.Linear.
Open Scope R_scope.

Definition stack (rk : nat) (WK WV : mat) : mat :=
  fun r c => if Nat.ltb r rk then WK r c else WV (r - rk)%nat c.

Definition kv_reachable (d rk rv : nat) (WK WV : mat) (bK bV k v : vec) : Prop :=
  exists h : vec,
    (forall r, (r < rk)%nat -> mv d WK h r + bK r = k r) /\
    (forall r, (r < rv)%nat -> mv d WV h r + bV r = v r).

Lemma mv_stack_key (d rk : nat) (WK WV : mat) (h : vec) (r : nat) :
  (r < rk)%nat -> mv d (stack rk WK WV) h r = mv d WK h r.
Proof.
  intro Hr. unfold mv, stack. apply sum_ext. intros c _.
  destruct (Nat.ltb_spec r rk); [reflexivity | lia].
Qed.

Lemma mv_stack_value (d rk : nat) (WK WV : mat) (h : vec) (r : nat) :
  mv d (stack rk WK WV) h (rk + r)%nat = mv d WV h r.
Proof.
  unfold mv, stack. apply sum_ext. intros c _.
  destruct (Nat.ltb_spec (rk + r) rk); [lia |]. do 2 f_equal. lia.
Qed.

(** The stacked system [M h = (k - b_K, v - b_V)] is the KV-prefix's condition. *)
Lemma kv_reachable_iff (d rk rv : nat) (WK WV : mat) (bK bV k v : vec) (h : vec) :
  ((forall r, (r < rk)%nat -> mv d WK h r + bK r = k r) /\
   (forall r, (r < rv)%nat -> mv d WV h r + bV r = v r)) <->
  (forall r, (r < rk + rv)%nat ->
     mv d (stack rk WK WV) h r =
     (if Nat.ltb r rk then k r - bK r else v (r - rk)%nat - bV (r - rk)%nat)).
Proof.
  split.
  - intros [Hk Hv] r Hr. destruct (Nat.ltb_spec r rk).
    + rewrite mv_stack_key by lia. rewrite <- (Hk r) by lia. ring.
    + replace r with (rk + (r - rk))%nat at 1 by lia. rewrite mv_stack_value.
      rewrite <- (Hv (r - rk)%nat) by lia. ring.
  - intro H. split.
    + intros r Hr. pose proof (H r ltac:(lia)) as Hr'.
      rewrite mv_stack_key in Hr' by lia. destruct (Nat.ltb_spec r rk); [lra | lia].
    + intros r Hr. pose proof (H (rk + r)%nat ltac:(lia)) as Hr'.
      rewrite mv_stack_value in Hr'. destruct (Nat.ltb_spec (rk + r) rk); [lia |].
      replace (rk + r - rk)%nat with r in Hr' by lia. lra.
Qed.

Theorem kv_converse (d rk rv : nat) (WK WV : mat) (bK bV : vec) :
  rows_independent (rk + rv) d (stack rk WK WV) <->
  forall k v : vec, kv_reachable d rk rv WK WV bK bV k v.
Proof.
  rewrite independent_iff_onto. split.
  - intros Honto k v.
    destruct (Honto (fun r => if Nat.ltb r rk then k r - bK r else v (r - rk)%nat - bV (r - rk)%nat))
      as [h Hh].
    exists h. apply (kv_reachable_iff d rk rv WK WV bK bV k v h). exact Hh.
  - intros Hall y.
    destruct (Hall (fun r => y r + bK r) (fun r => y (rk + r)%nat + bV r)) as [h Hh].
    exists h. intros r Hr.
    rewrite ((proj1 (kv_reachable_iff d rk rv WK WV bK bV _ _ h)) Hh r Hr).
    destruct (Nat.ltb_spec r rk); [ring |].
    replace (rk + (r - rk))%nat with r by lia. ring.
Qed.

(** Rank-deficient [M]: an explicit KV-prefix that no hidden state produces. *)
Theorem kv_converse_witness (d rk rv : nat) (WK WV : mat) (bK bV : vec) :
  rank_deficient (rk + rv) d (stack rk WK WV) ->
  exists k v : vec, ~ kv_reachable d rk rv WK WV bK bV k v.
Proof.
  intro Hdef. destruct (rank_deficient_unreachable _ _ _ Hdef) as [y Hy].
  exists (fun r => y r + bK r), (fun r => y (rk + r)%nat + bV r).
  intros [h Hh]. apply (Hy h). intros r Hr.
  rewrite ((proj1 (kv_reachable_iff d rk rv WK WV bK bV _ _ h)) Hh r Hr).
  destruct (Nat.ltb_spec r rk); [ring |].
  replace (rk + (r - rk))%nat with r by lia. ring.
Qed.

(** More key and value rows than the model dimension ([2 G d_head > d_model]): for every
    choice of weights some KV-prefix is no hidden state's image. *)
Theorem kv_strictly_wider_when_wide (d rk rv : nat) (WK WV : mat) (bK bV : vec) :
  (d < rk + rv)%nat -> exists k v : vec, ~ kv_reachable d rk rv WK WV bK bV k v.
Proof.
  intro H. apply kv_converse_witness, wide_rank_deficient, H.
Qed.

(** With the key rotated by its position, [k = R (W_K h + b_K)] ([R] orthogonal, as RoPE's
    [R_p]), the same condition decides whether every KV-prefix is a hidden state. *)
Theorem kv_converse_rotated (d rk rv : nat) (WK WV Rm : mat) (bK bV : vec) :
  orthogonal rk Rm -> orthogonal rk (transpose Rm) ->
  rows_independent (rk + rv) d (stack rk WK WV) <->
  forall k v : vec, exists h : vec,
    (forall r, (r < rk)%nat -> mv rk Rm (fun c => mv d WK h c + bK c) r = k r) /\
    (forall r, (r < rv)%nat -> mv d WV h r + bV r = v r).
Proof.
  intros HR HRt. rewrite kv_converse. split.
  - intros H k v. destruct (H (mv rk (transpose Rm) k) v) as [h [Hk Hv]].
    exists h. split; [| exact Hv]. intros r Hr.
    rewrite (mv_ext rk Rm _ (mv rk (transpose Rm) k)) by exact Hk. apply HR, Hr.
  - intros H k v. destruct (H (mv rk Rm k) v) as [h [Hk Hv]].
    exists h. split; [| exact Hv]. intros r Hr.
    rewrite <- (HRt (fun c => mv d WK h c + bK c) r Hr).
    rewrite <- (HRt k r Hr). apply mv_ext. intros c Hc. apply Hk, Hc.
Qed.
