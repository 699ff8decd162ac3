(** bias_span: with [np] virtual positions the bias of a head lies in the cone of the
    virtual positions' values, and over ALL queries and inputs the biases of one head span
    at most [np] dimensions (any [np + 1] of them are linearly dependent); after [W_O] the
    biases of [H] heads span at most [H np] dimensions.  General in [n] (per input), [np],
    [H], the value dimension and the model dimension. *)

Require Import Reals Lra Lia.
Require Import PrefixTheory.Sums PrefixTheory.Linear PrefixTheory.Softmax PrefixTheory.ConvexOutput.
Open Scope R_scope.

(** The measured bias: what the context adds beyond the rescaled output without it. *)
Definition measured_bias (np n : nat) (lp lc : nat -> R) (vp vc : nat -> vec) : vec :=
  fun c => head_pt np n lp lc vp vc c - (1 - prefix_mass np n lp lc) * head n lc vc c.

Theorem bias_cone (np n : nat) (lp lc : nat -> R) (vp vc : nat -> vec) :
  (0 < n)%nat ->
  exists a : nat -> R,
    (forall p, (p < np)%nat -> 0 <= a p) /\ sum np a < 1 /\
    forall c, measured_bias np n lp lc vp vc c = sum np (fun p => a p * vp p c).
Proof.
  intro Hn. exists (fun p => weight_pt np n lp lc p). split; [intros; apply softmax_nonneg |].
  split; [apply (prefix_mass_bounds np n lp lc Hn) |].
  intro c. unfold measured_bias. rewrite convex_output by exact Hn. unfold bias. ring.
Qed.

(** The point a query is pulled towards, [b / m], is the softmax over the virtual positions
    alone: it depends on the query only through the prefix logits, never on the content. *)
Theorem bias_direction (np n : nat) (lp lc : nat -> R) (vp vc : nat -> vec) (c : nat) :
  (0 < np)%nat -> (0 < n)%nat ->
  measured_bias np n lp lc vp vc c = prefix_mass np n lp lc * attend np lp vp c.
Proof.
  intros Hnp Hn. unfold measured_bias. rewrite convex_output by exact Hn.
  unfold bias. rewrite prefix_mass_closed, (attend_closed np lp vp c).
  rewrite (sum_ext np (fun p => weight_pt np n lp lc p * vp p c)
                   (fun p => exp (lp p) * vp p c / (Z np lp + Z n lc)))
    by (intros p Hp; rewrite weight_pt_prefix by exact Hp; unfold Rdiv; ring).
  rewrite sum_div.
  pose proof (Z_pos np lp Hnp). pose proof (Z_pos n lc Hn).
  field. split; lra.
Qed.

(** One head, [np + 1] inputs [k = 0 .. np] (each its own query and content: [n k] content
    keys, prefix logits [lp k], content logits [lc k], content values [vc k]) with the same
    virtual values [vp]: their biases are linearly dependent, so they span <= [np] dims. *)
Theorem bias_span_head (np : nat) (vp : nat -> vec) (n : nat -> nat)
    (lp lc : nat -> nat -> R) (vc : nat -> nat -> vec) :
  (forall k, (0 < n k)%nat) ->
  exists lam : nat -> R, (exists k, (k <= np)%nat /\ lam k <> 0) /\
    forall c, sum (S np) (fun k => lam k * measured_bias np (n k) (lp k) (lc k) vp (vc k) c) = 0.
Proof.
  intro Hn.
  apply (span_dependent np vp (fun k => measured_bias np (n k) (lp k) (lc k) vp (vc k))
           (fun k p => weight_pt np (n k) (lp k) (lc k) p)).
  intros k t _. unfold measured_bias. rewrite convex_output by apply Hn. unfold bias. ring.
Qed.

(** [H] heads, each with its own virtual values [vp h], mapped to the model by [W_O] blocks
    [WO h] (a [d_model x dv] matrix per head): the layer's bias over [H np + 1] inputs is
    linearly dependent, so the biases span <= [H np] dimensions of the residual stream. *)
Definition layer_bias (H np dv : nat) (WO : nat -> mat) (vp : nat -> nat -> vec)
    (n : nat -> nat) (lp lc : nat -> nat -> R) (vc : nat -> nat -> vec) : vec :=
  fun t => sum H (fun h => mv dv (WO h) (measured_bias np (n h) (lp h) (lc h) (vp h) (vc h)) t).

Theorem bias_span_heads (H np dv : nat) (WO : nat -> mat) (vp : nat -> nat -> vec)
    (n : nat -> nat -> nat) (lp lc : nat -> nat -> nat -> R) (vc : nat -> nat -> nat -> vec) :
  (forall k h, (0 < n k h)%nat) ->
  exists lam : nat -> R, (exists k, (k <= H * np)%nat /\ lam k <> 0) /\
    forall t, sum (S (H * np))
                (fun k => lam k * layer_bias H np dv WO vp (n k) (lp k) (lc k) (vc k) t) = 0.
Proof.
  intro Hn.
  set (g := fun i => mv dv (WO (Nat.div i np)) (vp (Nat.div i np) (Nat.modulo i np))).
  set (a := fun k h p => weight_pt np (n k h) (lp k h) (lc k h) p).
  apply (span_dependent (H * np) g
           (fun k => layer_bias H np dv WO vp (n k) (lp k) (lc k) (vc k))
           (fun k i => a k (Nat.div i np) (Nat.modulo i np))).
  intros k t _. unfold layer_bias.
  rewrite (sum_ext H _ (fun h => sum np (fun p => a k h p * mv dv (WO h) (vp h p) t))).
  - rewrite sum_flatten. apply sum_ext. intros i _. unfold g. reflexivity.
  - intros h _. unfold mv, measured_bias.
    rewrite (sum_ext dv _ (fun c => sum np (fun p => a k h p * (WO h t c * vp h p c)))).
    + rewrite sum_swap. apply sum_ext. intros p _. rewrite <- sum_scal_l. reflexivity.
    + intros c _. rewrite convex_output by apply Hn. unfold bias.
      match goal with |- ?w * (?s + ?x - ?x) = _ => replace (w * (s + x - x)) with (w * s) by ring end.
      rewrite <- sum_scal_l. apply sum_ext. intros. unfold a. ring.
Qed.
