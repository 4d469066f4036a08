# KgCoOp's settings, shared by its scripts (train and test must agree on W and the options), then the protocols.
#   W (env)    the knowledge-guided loss weight, a float (default 8.0); part of the base-to-novel folder name
#   CFG (env)  a configs/trainers/KgCoOp stem (default vit_b16_ep100_ctxv1)
TRAINER=KgCoOp
CFG="${CFG:-vit_b16_ep100_ctxv1}"
METHOD_DIR=kgcoop
W=${W:-8.0}
SHOTS_DIR="shots_16_${W}"  # upstream's folder name carries the weight
METHOD_OPTS=(TRAINER.COOP.N_CTX 4 TRAINER.COOP.CSC False TRAINER.COOP.W "${W}" TRAINER.COOP.CLASS_TOKEN_POSITION end)
B2N_TRAIN_SCRIPT=base2new_train_seed.sh
XD_TRAIN_SCRIPT=xd_train_imagenet.sh
source "$(dirname "${BASH_SOURCE[0]}")/../protocols.sh"
