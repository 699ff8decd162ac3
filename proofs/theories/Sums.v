(** Finite sums over the indices [0 .. n-1], for sequences of any length [n].

    Every object of the development is a finite sequence given as a function on
    [nat] together with its length, so that no lemma depends on a fixed size. *)

Require Import Reals Lra Lia.
Open Scope R_scope.

Fixpoint sum (n : nat) (f : nat -> R) : R :=
  match n with
  | O => 0
  | S m => sum m f + f m
  end.

Lemma sum_0 (f : nat -> R) : sum 0 f = 0.
Proof. reflexivity. Qed.

Lemma sum_S (n : nat) (f : nat -> R) : sum (S n) f = sum n f + f n.
Proof. reflexivity. Qed.

Lemma sum_ext (n : nat) (f g : nat -> R) :
  (forall i, (i < n)%nat -> f i = g i) -> sum n f = sum n g.
Proof.
  induction n as [| n IH]; intro H; simpl; [reflexivity |].
  rewrite IH by (intros; apply H; lia). rewrite (H n) by lia. reflexivity.
Qed.

Lemma sum_plus (n : nat) (f g : nat -> R) :
  sum n (fun i => f i + g i) = sum n f + sum n g.
Proof. induction n as [| n IH]; simpl; [ring | rewrite IH; ring]. Qed.

Lemma sum_minus (n : nat) (f g : nat -> R) :
  sum n (fun i => f i - g i) = sum n f - sum n g.
Proof. induction n as [| n IH]; simpl; [ring | rewrite IH; ring]. Qed.

Lemma sum_scal_l (n : nat) (c : R) (f : nat -> R) :
  sum n (fun i => c * f i) = c * sum n f.
Proof. induction n as [| n IH]; simpl; [ring | rewrite IH; ring]. Qed.

Lemma sum_scal_r (n : nat) (c : R) (f : nat -> R) :
  sum n (fun i => f i * c) = sum n f * c.
Proof. induction n as [| n IH]; simpl; [ring | rewrite IH; ring]. Qed.

Lemma sum_div (n : nat) (c : R) (f : nat -> R) :
  sum n (fun i => f i / c) = sum n f / c.
Proof. unfold Rdiv. apply sum_scal_r. Qed.

Lemma sum_zero (n : nat) : sum n (fun _ => 0) = 0.
Proof. induction n as [| n IH]; simpl; [reflexivity | rewrite IH; ring]. Qed.

Lemma sum_zero_ext (n : nat) (f : nat -> R) :
  (forall i, (i < n)%nat -> f i = 0) -> sum n f = 0.
Proof. intro H. rewrite (sum_ext n f (fun _ => 0)) by exact H. apply sum_zero. Qed.

Lemma sum_const (n : nat) (c : R) : sum n (fun _ => c) = INR n * c.
Proof.
  induction n as [| n IH]; simpl sum; [simpl; ring |].
  rewrite IH, S_INR. ring.
Qed.

(** A sequence of length [a + b] is its first [a] terms followed by [b] more. *)
Lemma sum_split (a b : nat) (f : nat -> R) :
  sum (a + b) f = sum a f + sum b (fun i => f (a + i)%nat).
Proof.
  induction b as [| b IH].
  - rewrite Nat.add_0_r. simpl. ring.
  - rewrite Nat.add_succ_r. simpl. rewrite IH. ring.
Qed.

Lemma sum_nonneg (n : nat) (f : nat -> R) :
  (forall i, (i < n)%nat -> 0 <= f i) -> 0 <= sum n f.
Proof.
  induction n as [| n IH]; intro H; simpl; [lra |].
  assert (0 <= sum n f) by (apply IH; intros; apply H; lia).
  assert (0 <= f n) by (apply H; lia). lra.
Qed.

Lemma sum_pos (n : nat) (f : nat -> R) :
  (0 < n)%nat -> (forall i, (i < n)%nat -> 0 < f i) -> 0 < sum n f.
Proof.
  destruct n as [| n]; intros Hn H; [lia |]. simpl.
  assert (0 <= sum n f) by (apply sum_nonneg; intros; left; apply H; lia).
  assert (0 < f n) by (apply H; lia). lra.
Qed.

Lemma sum_le (n : nat) (f g : nat -> R) :
  (forall i, (i < n)%nat -> f i <= g i) -> sum n f <= sum n g.
Proof.
  induction n as [| n IH]; intro H; simpl; [lra |].
  assert (sum n f <= sum n g) by (apply IH; intros; apply H; lia).
  assert (f n <= g n) by (apply H; lia). lra.
Qed.

(** A term of a non-negative sum is at most the sum. *)
Lemma sum_term_le (n : nat) (f : nat -> R) (k : nat) :
  (forall i, (i < n)%nat -> 0 <= f i) -> (k < n)%nat -> f k <= sum n f.
Proof.
  induction n as [| n IH]; intros H Hk; [lia |]. simpl.
  assert (0 <= sum n f) by (apply sum_nonneg; intros; apply H; lia).
  destruct (Nat.eq_dec k n) as [-> | Hne]; [lra |].
  assert (f k <= sum n f) by (apply IH; [intros; apply H; lia | lia]).
  assert (0 <= f n) by (apply H; lia). lra.
Qed.

(** A sum of non-negative terms is zero only if every term is. *)
Lemma sum_nonneg_zero (n : nat) (f : nat -> R) :
  (forall i, (i < n)%nat -> 0 <= f i) -> sum n f = 0 -> forall k, (k < n)%nat -> f k = 0.
Proof.
  intros H Hs k Hk.
  pose proof (sum_term_le n f k H Hk). pose proof (H k Hk). lra.
Qed.

Lemma sum_swap (n m : nat) (f : nat -> nat -> R) :
  sum n (fun i => sum m (fun j => f i j)) = sum m (fun j => sum n (fun i => f i j)).
Proof.
  induction n as [| n IH]; simpl.
  - symmetry. apply sum_zero.
  - rewrite IH, <- sum_plus. reflexivity.
Qed.

(** Kronecker delta: picking one term out of a sum. *)
Definition delta (i k : nat) : R := if Nat.eqb i k then 1 else 0.

Lemma sum_delta_l (n k : nat) (f : nat -> R) :
  (k < n)%nat -> sum n (fun i => delta i k * f i) = f k.
Proof.
  induction n as [| n IH]; intro Hk; [lia |]. simpl. unfold delta at 2.
  destruct (Nat.eqb_spec n k) as [-> | Hne].
  - rewrite (sum_zero_ext k).
    + ring.
    + intros i Hi. unfold delta. destruct (Nat.eqb_spec i k); [lia | ring].
  - rewrite IH by lia. ring.
Qed.

Lemma sum_delta_r (n k : nat) (f : nat -> R) :
  (k < n)%nat -> sum n (fun i => delta k i * f i) = f k.
Proof.
  intro Hk. rewrite <- (sum_delta_l n k f Hk). apply sum_ext. intros i _.
  unfold delta. rewrite Nat.eqb_sym. reflexivity.
Qed.

(** Removing one index [k] from [0 .. m]: [skip k] enumerates the other [m] indices. *)
Definition skip (k i : nat) : nat := if Nat.ltb i k then i else S i.

Lemma skip_neq (k i : nat) : skip k i <> k.
Proof. unfold skip. destruct (Nat.ltb_spec i k); lia. Qed.

Lemma skip_lt (k m i : nat) : (k <= m)%nat -> (i < m)%nat -> (skip k i < S m)%nat.
Proof. unfold skip. destruct (Nat.ltb_spec i k); lia. Qed.

Lemma sum_skip (m k : nat) (f : nat -> R) :
  (k <= m)%nat -> sum (S m) f = f k + sum m (fun i => f (skip k i)).
Proof.
  revert k. induction m as [| m IH]; intros k Hk.
  - assert (k = 0%nat) by lia. subst. simpl. ring.
  - destruct (Nat.eq_dec k (S m)) as [-> | Hne].
    + rewrite sum_S.
      rewrite (sum_ext (S m) (fun i => f (skip (S m) i)) f).
      * ring.
      * intros i Hi. unfold skip. destruct (Nat.ltb_spec i (S m)); [reflexivity | lia].
    + rewrite sum_S, (IH k) by lia. rewrite (sum_S m (fun i => f (skip k i))).
      unfold skip at 3. destruct (Nat.ltb_spec m k); [lia |]. ring.
Qed.

(** Two nested finite sums flattened into one of length [a * b]. *)
Lemma sum_flatten (a b : nat) (f : nat -> nat -> R) :
  sum a (fun h => sum b (fun p => f h p)) =
  sum (a * b) (fun i => f (Nat.div i b) (Nat.modulo i b)).
Proof.
  induction a as [| a IH]; [reflexivity |].
  rewrite sum_S, IH. replace (S a * b)%nat with (a * b + b)%nat by lia.
  rewrite sum_split. f_equal. apply sum_ext. intros p Hp.
  replace (a * b + p)%nat with (p + a * b)%nat by lia.
  rewrite Nat.div_add, Nat.mod_add by lia.
  rewrite Nat.div_small, Nat.mod_small by lia. reflexivity.
Qed.

Lemma sum_skip_lt (n k : nat) (f : nat -> R) :
  (k < n)%nat -> sum n f = f k + sum (n - 1) (fun i => f (skip k i)).
Proof.
  intro H. destruct n as [| n]; [lia |].
  replace (S n - 1)%nat with n by lia. apply sum_skip. lia.
Qed.
