(** Negative control (coqc must reject this file): one hard token claimed to reach [V + 1]
    behaviours.

    The first theorem is true: on the model whose behaviour is the token itself, the [V]
    hard tokens reach [V] distinct behaviours; its proof lists them.  The second claims
    [V + 1] with the same script (the list [0 .. V]).  coqc accepts the first and must fail
    inside the proof of the second (the development proves the claim false for every model:
    [hard_token_not_V_plus_1]). *)

Require Import Lia List.
Require Import PrefixTheory.Capacity.

Theorem hard_token_V_behaviours (V : nat) :
  exists l : list nat, NoDup l /\ length l = V /\
    forall b, In b l -> exists t, t < V /\ t = b.
Proof.
  exists (seq 0 V). split; [apply seq_NoDup |]. split; [apply seq_length |].
  intros b Hb. apply in_seq in Hb. exists b. split; [lia | reflexivity].
Qed.

Theorem hard_token_V_plus_1_behaviours (V : nat) :
  exists l : list nat, NoDup l /\ length l = S V /\
    forall b, In b l -> exists t, t < V /\ t = b.
Proof.
  exists (seq 0 (S V)). split; [apply seq_NoDup |]. split; [apply seq_length |].
  intros b Hb. apply in_seq in Hb. exists b. split; [lia | reflexivity].
Qed.
