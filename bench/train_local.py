"""Single-process training loop that produced the shipped checkpoint (same steps as diffgmm train).

    python bench/train_local.py OUT_DIR NUM_STEPS NUM_COMPONENTS MAX_MINUTES [CORPORA]
    python bench/train_local.py /tmp/train3 2 5 115 ../shared/corpora   # the shipped default (step 3500)

Writes OUT_DIR/last.pt, best.pt (by validation PESQ-WB) and hist.json every 500 steps.
"""
import logging, sys, time, json, math
import numpy as np, torch
sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parents[1]))
from model import DiffGMM, DiffGMMConfig, LossConfig, make_checkpoint
from pipeline.training import list_audio, load_corpus, split_corpus, validation_pairs, train_step, validate
from pipeline.mixing import MixConfig, mixed_batches
from pipeline.enhance import Enhancer, EnhanceConfig
from pipeline.checkpoints import save_checkpoint
logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
torch.set_num_threads(2); torch.manual_seed(0)
out = sys.argv[1]; T = int(sys.argv[2]); K = int(sys.argv[3]); max_minutes = float(sys.argv[4])
corpora = sys.argv[5] if len(sys.argv) > 5 else "../shared/corpora"; clean_uri = f"{corpora}/clean"; noise_uri = f"{corpora}/noise"
ck = list_audio(clean_uri); nk = [k for k in list_audio(noise_uri) if not k.startswith("zalozba_") and k.split(".")[0] not in ("air_conditioner","forest_1","forest_2","rain","water","wind")]
ctr, cva = split_corpus(ck, 0.1, True); ntr, nva = split_corpus(nk, 0.15, False)
logging.info("clean %d/%d noise %d/%d", len(ctr), len(cva), len(ntr), len(nva))
clean = load_corpus(clean_uri, 16000, ctr); noise = load_corpus(noise_uri, 16000, ntr)
vclean = load_corpus(clean_uri, 16000, cva); vnoise = load_corpus(noise_uri, 16000, nva)
mix = MixConfig(segment_seconds=1.0, snr_db_min=-5.0, snr_db_max=15.0)
val = validation_pairs(list(vclean.values()), list(vnoise.values()), MixConfig(segment_seconds=4.0), 16, seed=1234)
cfg = DiffGMMConfig(num_steps=T, num_components=K)
model = DiffGMM(cfg)
opt = torch.optim.Adam(model.parameters(), lr=1e-3)
lossc = LossConfig(stft_weight=0.0)
batches = mixed_batches(list(clean.values()), list(noise.values()), mix, 16, seed=0)
enh = Enhancer(model, EnhanceConfig())
best = -1e9; t0 = time.time(); step = 0; hist=[]
while time.time() - t0 < max_minutes*60:
    noisy, cl = next(batches)
    parts = train_step(model, opt, torch.from_numpy(noisy), torch.from_numpy(cl), lossc)
    step += 1
    if step % 50 == 0: logging.info("step %d %s", step, {k: round(v,4) for k,v in parts.items()})
    if step % 500 == 0:
        v = validate(enh, val, 16000); v["step"]=step; v["minutes"]=(time.time()-t0)/60; hist.append(v)
        logging.info("VAL %s", v)
        ckpt = make_checkpoint(model, {"step": step, "val": v, "loss": {"stft_weight":0.0}, "lr": 1e-3, "snr_db": [-5, 15], "trained_by": "bgtrain"})
        save_checkpoint(ckpt, f"{out}/last.pt")
        if v["pesq_wb"] > best:
            best = v["pesq_wb"]; save_checkpoint(ckpt, f"{out}/best.pt")
        json.dump(hist, open(f"{out}/hist.json","w"), indent=1)
