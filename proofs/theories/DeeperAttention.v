(** deeper_attention_changes (witness): relative attention is invariant in a layer GIVEN
    its inputs, not unconditionally.  Refuted claim: "in every layer, the content attention
    with the context is the no-context attention rescaled".

    Two layers, model dimension 1, two content tokens with states [x_0 = 0], [x_1 = 1].
    Layer 0: every logit 0, content values 0 ([W_V = 0]) and one KV-prefix position with
    value 1, residual connection: each content state moves by [1/3].  Layer 1: the logit
    [x_i x_j].  Whatever context layer 1 itself has, the content attention of query 1 is
    not the no-context one rescaled: the log-ratio [l_11 - l_10] is 4/3 instead of 1. *)

Require Import Reals Lra Lia.
Require Import PrefixTheory.Sums PrefixTheory.Linear PrefixTheory.Softmax.
Require Import PrefixTheory.RelativeAttention PrefixTheory.ConvexOutput.
Open Scope R_scope.

Definition x0 : nat -> R := fun j => INR j.

(** Layer-0 output (one coordinate) of content query [i], with and without the KV-prefix. *)
Definition layer0_pt (i : nat) : R :=
  x0 i + head_pt 1 2 (fun _ => 0) (fun _ => 0) (fun _ _ => 1) (fun _ _ => 0) 0%nat.

Definition layer0 (i : nat) : R :=
  x0 i + head 2 (fun _ => 0) (fun _ _ => 0) 0%nat.

(** Layer-1 logits of query 1 to the two content keys. *)
Definition layer1_logits_pt : nat -> R := fun j => layer0_pt 1 * layer0_pt j.
Definition layer1_logits : nat -> R := fun j => layer0 1 * layer0 j.

Lemma layer0_pt_value (i : nat) : layer0_pt i = INR i + 1 / 3.
Proof.
  unfold layer0_pt, x0, head_pt. rewrite attend_cat. unfold Z. simpl. rewrite exp_0. field.
Qed.

Lemma layer0_value (i : nat) : layer0 i = INR i.
Proof. unfold layer0, x0, head. rewrite attend_closed. unfold Z. simpl. rewrite exp_0. field. Qed.

Theorem deeper_attention_changes (np1 : nat) (lp1 : nat -> R) :
  ~ (forall j, (j < 2)%nat ->
       weight_pt np1 2 lp1 layer1_logits_pt (np1 + j) =
       softmax 2 layer1_logits j * (1 - prefix_mass np1 2 lp1 layer1_logits_pt)).
Proof.
  intro H. specialize (H 0%nat ltac:(lia)). rewrite relative_attention in H by lia.
  pose proof (prefix_mass_bounds np1 2 lp1 layer1_logits_pt ltac:(lia)).
  apply Rmult_eq_reg_r in H; [| lra].
  apply softmax2_eq in H. unfold layer1_logits_pt, layer1_logits in H.
  rewrite !layer0_pt_value, !layer0_value in H. simpl INR in H. lra.
Qed.
