(** Learned key/value biases (attention sinks, docs/theory.md §5.4): every query also attends
    to a learned key with logit [ls] and value [vs].  The sequence's own keys (a context's and
    the content's) have logits [lc] and values [vc], any number [n >= 1] of them. *)

Require Import Reals Lra Lia.
Require Import PrefixTheory.Sums PrefixTheory.Linear PrefixTheory.Softmax.
Require Import PrefixTheory.RelativeAttention PrefixTheory.ConvexOutput.
Open Scope R_scope.

Definition sink_weight (n : nat) (ls : R) (lc : nat -> R) (j : nat) : R :=
  exp (lc j) / (exp ls + Z n lc).

Definition sink_share (n : nat) (ls : R) (lc : nat -> R) : R := exp ls / (exp ls + Z n lc).

Definition sink_head (n : nat) (ls : R) (vs : vec) (lc : nat -> R) (vc : nat -> vec) : vec :=
  fun c => (exp ls * vs c + sum n (fun j => exp (lc j) * vc j c)) / (exp ls + Z n lc).

Lemma Z_one (ls : R) : Z 1 (fun _ => ls) = exp ls.
Proof. unfold Z. simpl. ring. Qed.

(** kv_bias_prefix: the bias is the one-position KV-prefix [(ls, vs)]. *)
Theorem kv_bias_is_prefix (n : nat) (ls : R) (lc : nat -> R) (j : nat) :
  sink_weight n ls lc j = weight_pt 1 n (fun _ => ls) lc (1 + j).
Proof. unfold sink_weight. rewrite weight_pt_content, Z_one. reflexivity. Qed.

Theorem kv_bias_output_is_prefix (n : nat) (ls : R) (vs : vec) (lc : nat -> R)
    (vc : nat -> vec) (c : nat) :
  sink_head n ls vs lc vc c = head_pt 1 n (fun _ => ls) lc (fun _ => vs) vc c.
Proof.
  unfold sink_head, head_pt. rewrite attend_cat, Z_one. unfold sum. simpl. f_equal. ring.
Qed.

(** kv_bias_rescales: every weight is the plain softmax weight times [1 - s], [s] the sink's
    share, ... *)
Theorem kv_bias_rescales (n : nat) (ls : R) (lc : nat -> R) (j : nat) :
  (0 < n)%nat ->
  sink_weight n ls lc j = softmax n lc j * (1 - sink_share n ls lc).
Proof.
  intro Hn. unfold sink_weight, sink_share, softmax.
  pose proof (Z_pos n lc Hn). pose proof (exp_pos ls). field. split; lra.
Qed.

(** ... with [0 < 1 - s < 1]: a factor below 1, so relative attention is unchanged ... *)
Theorem kv_bias_factor_bounds (n : nat) (ls : R) (lc : nat -> R) :
  (0 < n)%nat -> 0 < 1 - sink_share n ls lc < 1.
Proof.
  intro Hn. unfold sink_share. pose proof (Z_pos n lc Hn). pose proof (exp_pos ls).
  assert (0 < exp ls / (exp ls + Z n lc) < 1).
  { split; [apply Rdiv_lt_0_compat; lra |].
    apply (Rmult_lt_reg_r (exp ls + Z n lc)); [lra |].
    unfold Rdiv. rewrite Rmult_assoc, Rinv_l by lra. lra. }
  lra.
Qed.

(** ... and the output moves towards [vs]: [t^sink = s vs + (1 - s) t]. *)
Theorem kv_bias_output (n : nat) (ls : R) (vs : vec) (lc : nat -> R) (vc : nat -> vec) (c : nat) :
  (0 < n)%nat ->
  sink_head n ls vs lc vc c = sink_share n ls lc * vs c + (1 - sink_share n ls lc) * attend n lc vc c.
Proof.
  intro Hn. unfold sink_head, sink_share. rewrite attend_closed.
  pose proof (Z_pos n lc Hn). pose proof (exp_pos ls). field. split; lra.
Qed.
