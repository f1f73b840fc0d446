"""Tool definitions and labelled requests for tool-retrieval tests and `bench/tool_routing.py`.

The tools mirror the ones the project has or will have; only their names, descriptions and
example requests matter here, so the functions are stubs. The requests below are deliberately
not copies of the tools' examples: they measure how routing generalises, not recall.
"""

from __future__ import annotations

import re
from dataclasses import replace

from pydantic import BaseModel

from tools.registry import Tool, ToolRegistry


class ExpressionArgs(BaseModel):
    expression: str


class PromptArgs(BaseModel):
    prompt: str


class ImageArgs(BaseModel):
    image: str
    question: str | None = None


class ClassifyArgs(BaseModel):
    image: str
    labels: list[str]


class QueryArgs(BaseModel):
    query: str


class MemoryArgs(BaseModel):
    text: str


def _stub(**kwargs):
    return kwargs


# (name, description, args schema, example requests)
TOOL_SPECS: list[tuple[str, str, type[BaseModel], list[str]]] = [
    (
        "calculator",
        "Evaluate an arithmetic or symbolic math expression exactly: sums, products, percentages, "
        "powers, roots, unit arithmetic, equations.",
        ExpressionArgs,
        [
            "What is 17 times 23?",
            "Calculate 15% of 240",
            "Solve x^2 - 5x + 6 = 0",
            "Add up these numbers: 12, 7.5 and 30",
            "Compute the total of the figures found so far",
            "计算 365 乘以 24",
            "一百除以七等于多少？",
            "把这几个数加起来求平均值",
        ],
    ),
    (
        "generate_image",
        "Create a new picture from a text prompt with Stable Diffusion: draw, paint, render or illustrate.",
        PromptArgs,
        [
            "Draw a cat wearing a space suit",
            "Generate a watercolor painting of a lighthouse at sunset",
            "Make me a logo with a blue fox",
            "Create an image of a medieval market in pixel-art style",
            "Render a picture of the scene described above",
            "画一只在月亮上的兔子",
            "生成一张山水画",
            "帮我设计一张海报图片",
        ],
    ),
    (
        "caption_image",
        "Look at an image the user provided and describe it, or answer a question about what it shows.",
        ImageArgs,
        [
            "What's in this picture?",
            "Describe the attached photo",
            "What colour is the car in this image?",
            "Read the text on the sign in this photo",
            "Describe the image the user uploaded",
            "这张图片里有什么？",
            "描述一下这张照片",
            "照片里的人在做什么？",
        ],
    ),
    (
        "classify_image",
        "Zero-shot image classification with CLIP: score an image against a list of candidate labels "
        "and say which label fits best.",
        ClassifyArgs,
        [
            "Is this photo a cat or a dog?",
            "Which of these labels fits the image: beach, forest, city?",
            "Classify this picture as indoor or outdoor",
            "Tag the uploaded image with the best matching category",
            "这张图是猫还是狗？",
            "把这张图片分类：风景、人物还是动物",
            "给这张照片打个标签",
        ],
    ),
    (
        "search",
        "Search the web and the local knowledge base for facts, news, definitions and current information.",
        QueryArgs,
        [
            "Who won the 2022 World Cup?",
            "What is the capital of Australia?",
            "Latest news about electric cars",
            "When was the Eiffel Tower built?",
            "Look up the current exchange rate of the euro",
            "珠穆朗玛峰有多高？",
            "谁发明了电话？",
            "查一下最新的科技新闻",
        ],
    ),
    (
        "retrieve",
        "Retrieve passages from the user's own uploaded documents, files, notes and reports (RAG over "
        "our documents).",
        QueryArgs,
        [
            "What does our contract say about termination?",
            "Find the section on refunds in my uploaded PDF",
            "Summarise the quarterly report I gave you",
            "According to our docs, how do I reset the device?",
            "Look up the relevant passage in the user's documents",
            "我们的文档里关于报销的规定是什么？",
            "在我上传的文件里找一下项目预算",
        ],
    ),
    (
        "remember",
        "Store a fact about the user or their preferences in long-term memory for later conversations.",
        MemoryArgs,
        [
            "Remember that my birthday is on May 3rd",
            "Please note that I prefer vegetarian food",
            "Keep in mind that my manager is called Alice",
            "Save the user's new preference to memory",
            "记住我的生日是五月三号",
            "请记下我对花生过敏",
        ],
    ),
    (
        "recall",
        "Look up what the user told you earlier from long-term memory: their facts and preferences.",
        QueryArgs,
        [
            "What did I tell you about my birthday?",
            "Do you remember where I live?",
            "What are my food preferences?",
            "Check memory for what the user told us before",
            "你还记得我叫什么名字吗？",
            "我之前跟你说过我喜欢什么运动？",
        ],
    ),
]

_CJK = re.compile(r"[\u3400-\u9fff]")


def make_tools(examples: str = "all") -> list[Tool]:
    """examples: "all", "english" (drop the Chinese examples) or "none" (description only)."""
    tools = [Tool(name=n, description=d, args_schema=a, func=_stub, examples=list(ex)) for n, d, a, ex in TOOL_SPECS]
    if examples == "english":
        tools = [replace(t, examples=[e for e in t.examples if not _CJK.search(e)]) for t in tools]
    elif examples == "none":
        tools = [replace(t, examples=[]) for t in tools]
    elif examples != "all":
        raise ValueError(f"examples must be all, english or none, not {examples!r}")
    return tools


def make_registry(examples: str = "all") -> ToolRegistry:
    return ToolRegistry(make_tools(examples))


# Ten simple requests, English and Chinese: (expected tool, English, Chinese). Used by the bench.
BENCH_REQUESTS: list[tuple[str, str, str]] = [
    ("calculator", "What is 128 plus 256?", "128 加 256 等于多少？"),
    ("calculator", "How much is 12.5% of 880?", "880 的百分之十二点五是多少？"),
    ("generate_image", "Draw a red dragon flying over a castle", "画一条在城堡上空飞翔的红龙"),
    ("caption_image", "Can you describe what this image shows?", "你能描述一下这张图片的内容吗？"),
    ("classify_image", "Is the animal in this photo a horse or a donkey?", "这张照片里的动物是马还是驴？"),
    ("search", "Who is the current president of France?", "法国现任总统是谁？"),
    ("search", "What is the population of Tokyo?", "东京有多少人口？"),
    ("retrieve", "What does our employee handbook say about vacation days?", "我们的员工手册里关于年假是怎么规定的？"),
    ("remember", "Remember that my favourite colour is green", "记住我最喜欢的颜色是绿色"),
    ("recall", "What did I say my favourite colour was?", "我之前说过我最喜欢什么颜色？"),
]

# A second, disjoint set for the tests: (expected tool, request).
TEST_REQUESTS: list[tuple[str, str]] = [
    ("calculator", "Compute 2 to the power of 20"),
    ("calculator", "What is 3.5 divided by 0.7?"),
    ("calculator", "求 1 到 100 的和"),
    ("calculator", "45 乘以 18 是多少"),
    ("generate_image", "Paint me a picture of a robot reading a book"),
    ("generate_image", "Create an illustration of a futuristic city at night"),
    ("generate_image", "帮我画一幅夜晚的城市插画"),
    ("caption_image", "What is the man in this photo holding?"),
    ("caption_image", "请告诉我这张照片上是什么"),
    ("classify_image", "Does this picture show a car, a bus or a bicycle?"),
    ("classify_image", "这张照片属于哪一类：食物、建筑还是风景？"),
    ("search", "When did the Berlin Wall fall?"),
    ("search", "What's the tallest building in the world?"),
    ("search", "长城有多长？"),
    ("retrieve", "Find what my uploaded lease says about pets"),
    ("retrieve", "在我们的产品文档里查一下保修期"),
    ("remember", "Note that my daughter's name is Lily"),
    ("remember", "记住我每天早上七点起床"),
    ("recall", "Do you remember what my daughter is called?"),
    ("recall", "我之前告诉过你我几点起床？"),
]

# Small talk: the router must stay silent at its threshold.
CHITCHAT: list[str] = [
    "hello, how are you?",
    "你好",
    "thanks a lot!",
    "谢谢你",
    "good morning",
    "再见",
]

# Requests the model should answer by itself: harder for a threshold than small talk (the bench
# uses them to choose the threshold; the tests do not pin them).
NO_TOOL: list[str] = CHITCHAT + [
    "tell me a joke",
    "讲个笑话",
    "what can you do?",
    "你是谁？",
    "Write a poem about autumn",
    "写一首关于秋天的诗",
    "Translate 'good night' into French",
    "把这句话翻译成英文：今天很开心",
    "I'm feeling sad today",
    "我今天心情不好",
    "How does photosynthesis work?",
    "Explain recursion to me",
]

# Multi-step requests: the plan step, not the request alone, decides the tool of this act step.
# (expected tool, request, current plan step)
CONTEXT_REQUESTS: list[tuple[str, str, str]] = [
    ("search", "Find the populations of France and Germany and add them up", "Look up the population of France"),
    ("calculator", "Find the populations of France and Germany and add them up", "Add the two population figures"),
    ("retrieve", "Check our budget document and draw a chart-like picture of it", "Read the budget figures from the user's document"),
    ("generate_image", "Check our budget document and draw a chart-like picture of it", "Draw an illustration of the budget"),
    ("caption_image", "Describe this photo and then paint a similar scene in oil", "Describe the photo the user attached"),
    ("generate_image", "Describe this photo and then paint a similar scene in oil", "Paint a similar scene as an oil painting"),
    ("recall", "Using what I told you about my diet, suggest a recipe and compute its calories", "Recall the user's diet preferences"),
    ("calculator", "Using what I told you about my diet, suggest a recipe and compute its calories", "Sum the calories: 250 + 120 + 310"),
    ("search", "查一下北京和上海的人口，然后算出总和", "查找北京的人口"),
    ("calculator", "查一下北京和上海的人口，然后算出总和", "把两个人口数字加起来"),
    ("classify_image", "看看这张照片是室内还是室外，然后把结果记住", "判断照片是室内还是室外"),
    ("remember", "看看这张照片是室内还是室外，然后把结果记住", "把判断结果存入长期记忆"),
    ("retrieve", "总结我上传的合同，再画一张示意图", "阅读用户上传的合同并总结要点"),
    ("generate_image", "总结我上传的合同，再画一张示意图", "根据总结画一张示意图"),
    ("search", "What's the weather in Paris tomorrow? Then draw it as a postcard", "Search for tomorrow's weather forecast in Paris"),
    ("generate_image", "What's the weather in Paris tomorrow? Then draw it as a postcard", "Draw a postcard of Paris in that weather"),
]
