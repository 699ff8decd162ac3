(** deeper_first_order: how earlier-layer biases change a deeper layer's logit.

    With attention inputs [x] (no context) moved to [x + eps d] by the earlier layers'
    biases, the logit [l(eps) = T (x_i + eps d_i)^T H (x_j + eps d_j)] (any dimension [d],
    any bilinear form [H = W_Q^T W_K]) is a quadratic polynomial in [eps]: its derivative
    at 0 is [T (d_i^T H x_j + x_i^T H d_j)] (Coquelicot's [is_derive], and the standard
    library's [derivable_pt_lim]), the remainder is exactly [eps^2 T d_i^T H d_j], and the
    central difference equals the first-order term for every [eps <> 0].  The same holds for
    the query/key form [T (q + eps dq) . (k + eps dk)], which covers query/key biases and RoPE
    ([dq = R W_Q d_i], [dk = R' W_K d_j]). *)

Require Import Reals Lra Lia.
Set Warnings "-ambiguous-paths".
From Coquelicot Require Import Coquelicot.
Set Warnings "ambiguous-paths".
Require Import PrefixTheory.Sums PrefixTheory.Linear.
Open Scope R_scope.

Definition bilinear (d : nat) (H : mat) (u v : vec) : R :=
  sum d (fun a => sum d (fun b => u a * H a b * v b)).

Lemma bilinear_expand (d : nat) (H : mat) (u du v dv : vec) (e : R) :
  bilinear d H (fun a => u a + e * du a) (fun b => v b + e * dv b) =
  bilinear d H u v + e * (bilinear d H du v + bilinear d H u dv) + e * e * bilinear d H du dv.
Proof.
  unfold bilinear. rewrite <- !sum_plus, <- !sum_scal_l, <- !sum_plus.
  apply sum_ext. intros a _.
  rewrite <- !sum_plus, <- !sum_scal_l, <- !sum_plus. apply sum_ext. intros b _. ring.
Qed.

Definition moved_logit (d : nat) (T : R) (H : mat) (xi xj di dj : vec) (e : R) : R :=
  T * bilinear d H (fun a => xi a + e * di a) (fun b => xj b + e * dj b).

Definition first_order (d : nat) (T : R) (H : mat) (xi xj di dj : vec) : R :=
  T * (bilinear d H di xj + bilinear d H xi dj).

Theorem moved_logit_expansion (d : nat) (T : R) (H : mat) (xi xj di dj : vec) (e : R) :
  moved_logit d T H xi xj di dj e =
  moved_logit d T H xi xj di dj 0 + e * first_order d T H xi xj di dj
  + e ^ 2 * (T * bilinear d H di dj).
Proof.
  unfold moved_logit, first_order. rewrite !bilinear_expand. ring.
Qed.

Theorem deeper_first_order (d : nat) (T : R) (H : mat) (xi xj di dj : vec) :
  is_derive (moved_logit d T H xi xj di dj) 0 (first_order d T H xi xj di dj).
Proof.
  apply is_derive_ext with
    (f := fun e => moved_logit d T H xi xj di dj 0 + e * first_order d T H xi xj di dj
                   + e ^ 2 * (T * bilinear d H di dj)).
  - intro e. symmetry. apply moved_logit_expansion.
  - auto_derive; [exact I | ring].
Qed.

(** The same derivative in the standard library's sense. *)
Corollary deeper_first_order_reals (d : nat) (T : R) (H : mat) (xi xj di dj : vec) :
  derivable_pt_lim (moved_logit d T H xi xj di dj) 0 (first_order d T H xi xj di dj).
Proof. apply is_derive_Reals, deeper_first_order. Qed.

(** The logit is quadratic, so the central difference is exact at every step. *)
Theorem central_difference_exact (d : nat) (T : R) (H : mat) (xi xj di dj : vec) (e : R) :
  e <> 0 ->
  (moved_logit d T H xi xj di dj e - moved_logit d T H xi xj di dj (- e)) / (2 * e) =
  first_order d T H xi xj di dj.
Proof.
  intro He. rewrite (moved_logit_expansion d T H xi xj di dj e),
    (moved_logit_expansion d T H xi xj di dj (- e)).
  field. exact He.
Qed.

(** Query/key form: affine projections with biases and positional rotations. *)
Definition moved_qk_logit (k : nat) (T : R) (q dq kk dk : vec) (e : R) : R :=
  T * dot k (fun c => q c + e * dq c) (fun c => kk c + e * dk c).

Theorem deeper_first_order_qk (k : nat) (T : R) (q dq kk dk : vec) :
  is_derive (moved_qk_logit k T q dq kk dk) 0 (T * (dot k dq kk + dot k q dk)).
Proof.
  apply is_derive_ext with
    (f := fun e => T * dot k q kk + e * (T * (dot k dq kk + dot k q dk)) + e ^ 2 * (T * dot k dq dk)).
  - intro e. unfold moved_qk_logit, dot.
    repeat rewrite <- sum_plus; repeat rewrite <- sum_scal_l; repeat rewrite <- sum_plus.
    apply sum_ext. intros. ring.
  - auto_derive; [exact I | ring].
Qed.
