"""About NeuroInsight: the project, the model, the data, references, people, citation."""

from __future__ import annotations

import streamlit as st

from neuroinsight import __version__, ui

ui.page_header("About")
st.markdown(
    f"""
**NeuroInsight {__version__}** is an open tool for exploring brain-tumor segmentation on MRI. It reproduces the
NeuroInsight system of Khan and Rehman ("Brain Tumor Segmentation using Attention-UNet"): a 2-D Attention-UNet
trained on BraTS cases, an app to upload 3-D MRIs, segment them in seconds, view them slice by slice, estimate
the tumor grade and share a PDF report.

### The model
| Component | Details |
|---|---|
| Input | 128 × 128 × 2 (T1ce and FLAIR slices); a four-modality variant takes T1, T1ce, T2, FLAIR |
| Encoder | 3 blocks of two 3×3 Conv2D (ReLU) + max pooling, filters 32 → 64 → 128 |
| Bottleneck | 2 Conv2D layers with 256 filters |
| Attention gates | additive gates (Oktay et al. 2018) on every skip connection, 128, 64, 32 channels |
| Decoder | 3 upsampling blocks with Conv2D, concatenated with the attention-filtered skips |
| Output | 1×1 Conv2D + softmax over 4 classes (background, NCR/NET, edema, enhancing) |
| Loss / optimiser | categorical cross-entropy (+ soft Dice in the shipped models), Adam 1e-3 |
| Precision | training: mixed float16 on GPUs, bfloat16 on CPUs with native support, else float32; inference bfloat16 |

Measured accuracy, training data and settings: `models/MODEL_CARD.md`, shown in full below.

### The data
BraTS 2018 training cases (Menze et al. 2015; Bakas et al. 2017; Bakas et al. 2018): pre-operative multi-modal
MRI of gliomas, skull-stripped, co-registered, 1 mm isotropic, with expert labels 1 (necrotic / non-enhancing
core), 2 (edema), 4 (enhancing tumor). The BraTS data are provided for research under the challenge's terms;
cite the BraTS papers when you use them. No patient data is stored in this project's repository.

### References
- O. Oktay et al., "Attention U-Net: Learning Where to Look for the Pancreas", MIDL 2018, arXiv:1804.03999.
- B. H. Menze et al., "The Multimodal Brain Tumor Image Segmentation Benchmark (BRATS)", IEEE TMI 34(10), 2015.
- S. Bakas et al., "Advancing The Cancer Genome Atlas glioma MRI collections with expert segmentation labels and
  radiomic features", Scientific Data 4, 2017.
- S. Bakas et al., "Identifying the Best Machine Learning Algorithms for Brain Tumor Segmentation, Progression
  Assessment, and Overall Survival Prediction in the BRATS Challenge", arXiv:1811.02629, 2018.
- F. Isensee et al., "nnU-Net: a self-configuring method for deep learning-based biomedical image segmentation",
  Nature Methods 18, 2021.

### People
- Muhammad Usman Khan and Dr. Eid Rehman: the original NeuroInsight notebook and system design.
- The NeuroInsight open-source team: this implementation.

### How to cite
> NeuroInsight: brain-tumor segmentation with an Attention-UNet, version {__version__}.
> Please also cite Oktay et al. 2018 and the BraTS papers above.

{ui.DISCLAIMER}
"""
)

card = ui.model_card()
if card is not None:
    # The app is often used without the repository at hand: the card the pages keep citing is readable here.
    with st.expander("Model card (models/MODEL_CARD.md): data, split, settings, every measured number"):
        st.markdown(card)
