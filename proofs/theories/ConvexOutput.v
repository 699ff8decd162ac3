(** convex_output: with a context, a head's output is a convex combination of the
    virtual positions' values and the output without context:
    [t^pt = sum_p A^pt_p v_p + (1 - sum_p A^pt_p) t], in every coordinate of a value space
    of any dimension, for any [n >= 1] content keys and [np] virtual positions. *)

Require Import Reals Lra Lia.
Require Import PrefixTheory.Sums PrefixTheory.Linear PrefixTheory.Softmax.
Open Scope R_scope.

(** The head output with the context ([vp]: values of the virtual positions, e.g. [W_V s_p]
    or a KV-prefix's free values) and without it. *)
Definition head_pt (np n : nat) (lp lc : nat -> R) (vp vc : nat -> vec) : vec :=
  attend (np + n) (cat np lp lc) (cat np vp vc).

Definition head (n : nat) (lc : nat -> R) (vc : nat -> vec) : vec := attend n lc vc.

(** The bias: the part of the output that comes from the virtual positions. *)
Definition bias (np n : nat) (lp lc : nat -> R) (vp : nat -> vec) : vec :=
  fun c => sum np (fun p => weight_pt np n lp lc p * vp p c).

Theorem convex_output (np n : nat) (lp lc : nat -> R) (vp vc : nat -> vec) (c : nat) :
  (0 < n)%nat ->
  head_pt np n lp lc vp vc c =
  bias np n lp lc vp c + (1 - prefix_mass np n lp lc) * head n lc vc c.
Proof.
  intro Hn. unfold head_pt, head, bias. rewrite attend_cat, attend_closed, prefix_mass_closed.
  rewrite (sum_ext np (fun p => weight_pt np n lp lc p * vp p c)
                   (fun p => exp (lp p) * vp p c / (Z np lp + Z n lc)))
    by (intros p Hp; rewrite weight_pt_prefix by exact Hp; unfold Rdiv; ring).
  rewrite sum_div.
  pose proof (Z_nonneg np lp). pose proof (Z_pos n lc Hn).
  field. split; lra.
Qed.

(** The weights of the combination: non-negative, and the prefix mass is a proper share. *)
Theorem convex_output_weights (np n : nat) (lp lc : nat -> R) :
  (0 < n)%nat ->
  (forall p, 0 <= weight_pt np n lp lc p) /\
  sum np (fun p => weight_pt np n lp lc p) = prefix_mass np n lp lc /\
  0 <= prefix_mass np n lp lc < 1.
Proof.
  intro Hn. split; [intro p; apply softmax_nonneg |]. split; [reflexivity |].
  apply prefix_mass_bounds, Hn.
Qed.

(** The displacement caused by the context: [t^pt - t = b - m t]. *)
Theorem convex_output_displacement (np n : nat) (lp lc : nat -> R) (vp vc : nat -> vec) (c : nat) :
  (0 < n)%nat ->
  head_pt np n lp lc vp vc c - head n lc vc c =
  bias np n lp lc vp c - prefix_mass np n lp lc * head n lc vc c.
Proof. intro Hn. rewrite convex_output by exact Hn. ring. Qed.
