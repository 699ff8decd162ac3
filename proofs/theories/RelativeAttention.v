(** relative_attention: a context rescales a head's content attention uniformly.

    For a query with [n >= 1] visible content keys (logits [lc]) and [np] virtual
    positions of any kind (logits [lp]: hard/soft prompt, prefix or KV-prefix keys),
    [A^pt_ij = A_ij (1 - sum_p A^pt_ip)] for every content key [j]. *)

Require Import Reals Lra Lia.
Require Import PrefixTheory.Sums PrefixTheory.Linear PrefixTheory.Softmax.
Open Scope R_scope.

Theorem relative_attention (np n : nat) (lp lc : nat -> R) (j : nat) :
  (0 < n)%nat -> (j < n)%nat ->
  weight_pt np n lp lc (np + j) = softmax n lc j * (1 - prefix_mass np n lp lc).
Proof.
  intros Hn _.
  rewrite weight_pt_content, prefix_mass_closed. unfold softmax.
  pose proof (Z_nonneg np lp). pose proof (Z_pos n lc Hn).
  field. split; lra.
Qed.

(** Ratios of content weights are unchanged: the context never changes which content key
    a query prefers, nor by how much. *)
Theorem relative_attention_ratio (np n : nat) (lp lc : nat -> R) (j k : nat) :
  (0 < n)%nat ->
  weight_pt np n lp lc (np + j) / weight_pt np n lp lc (np + k) =
  softmax n lc j / softmax n lc k.
Proof.
  intro Hn. rewrite !weight_pt_content. unfold softmax.
  pose proof (Z_nonneg np lp). pose proof (Z_pos n lc Hn).
  pose proof (exp_pos (lc k)).
  field. repeat split; lra.
Qed.

(** False variant, refuted: if the virtual positions were left out of the denominator
    (content weight [exp (lc j) / Z n lc]), the identity would fail: one content key, one
    virtual position, every logit 0. *)
Definition weight_outside (np n : nat) (lp lc : nat -> R) (j : nat) : R :=
  exp (cat np lp lc j) / Z n lc.

Definition prefix_mass_outside (np n : nat) (lp lc : nat -> R) : R :=
  sum np (fun p => weight_outside np n lp lc p).

Theorem prefix_outside_denominator_refuted :
  ~ (forall (np n : nat) (lp lc : nat -> R) (j : nat), (0 < n)%nat -> (j < n)%nat ->
       weight_outside np n lp lc (np + j) =
       softmax n lc j * (1 - prefix_mass_outside np n lp lc)).
Proof.
  intro H. specialize (H 1%nat 1%nat (fun _ => 0) (fun _ => 0) 0%nat ltac:(lia) ltac:(lia)).
  unfold weight_outside, prefix_mass_outside, weight_outside, softmax, Z, cat in H.
  simpl in H. rewrite exp_0 in H. lra.
Qed.
