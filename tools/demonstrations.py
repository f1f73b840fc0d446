"""Worked examples of calling each tool: a request and the arguments that answer it.

A small base model cannot follow a schema described in prose, but it continues a pattern well.
For such models the act step shows a few of these, the most similar to the request first in
line, then the request, and lets the model write the arguments under the tool's grammar
(agent/demos.py picks them, agent/prompts.py lays them out). They also document each tool's
arguments by example.

Keep them short, varied and in both languages; none may be a task of an eval suite or a bench
set (apps/eval/suites, bench/word_problems.jsonl), or the scores would measure memorisation.
"""

from __future__ import annotations

from typing import Any

Demo = tuple[str, dict[str, Any]]

CALCULATOR: list[Demo] = [
    ("A pencil costs 0.45 dollars. How much do 8 pencils cost?", {"expression": "0.45*8"}),
    ("What is 15% of 80?", {"expression": "15% * 80"}),
    ("Sam has 120 stickers and gives away 45. How many are left?", {"expression": "120-45"}),
    ("A train goes 60 km per hour for 3.5 hours. How far does it go?", {"expression": "60*3.5"}),
    ("Four friends share a bill of 86 dollars equally. How much does each pay?", {"expression": "86/4"}),
    ("What is the average of 12, 15 and 21?", {"expression": "(12+15+21)/3"}),
    ("A jacket costs 80 dollars and is 25% off. What is the sale price?", {"expression": "80*(1-25%)"}),
    ("Adult tickets cost 7 dollars and child tickets 4 dollars. What do 2 adults and 3 children pay?", {"expression": "2*7+3*4"}),
    ("How many minutes are there in 6.5 hours?", {"expression": "6.5*60"}),
    ("Mia earns 15 dollars an hour and works 38 hours. How much does she earn?", {"expression": "15*38"}),
    ("A book has 320 pages. Leo has read 40% of it. How many pages has he read?", {"expression": "40% * 320"}),
    ("Calculate (1250 - 380) * 12 / 5", {"expression": "(1250-380)*12/5"}),
    ("What's the square root of 50?", {"expression": "sqrt(50)"}),
    ("What is 2 to the power of 100, exactly?", {"expression": "2^100"}),
    ("Ann pays with a 50 dollar note for 3 cakes at 9.5 dollars each. How much change does she get?", {"expression": "50-3*9.5"}),
    ("A cyclist rides 54 km in 3 hours. What is her average speed in km per hour?", {"expression": "54/3"}),
    ("A garden is 12.5 m long and 8 m wide. What is its area?", {"expression": "12.5*8"}),
    ("A square tile has sides of 9 cm. What is its area in square centimetres?", {"expression": "9^2"}),
    ("I had 500 dollars, spent 120 on shoes and 75.5 on books. How much is left?", {"expression": "500-120-75.5"}),
    ("A tank holds 60 litres and 30% is used. How many litres are left?", {"expression": "60*(1-30%)"}),
    ("How many hours are there in 5 days?", {"expression": "5*24"}),
    ("How many seconds are in 2 hours?", {"expression": "2*60*60"}),
    ("A van uses 8 litres per 100 km. How many litres does it need for 350 km?", {"expression": "8*350/100"}),
    ("2000 dollars earn 3% simple interest a year. How much interest is earned in 4 years?", {"expression": "2000*3%*4"}),
    ("What is the average of 70, 85, 90 and 75?", {"expression": "(70+85+90+75)/4"}),
    ("一支铅笔 1.5 元，买 7 支要多少钱？", {"expression": "1.5*7"}),
    ("一列火车 3 小时行驶了 240 千米，平均每小时行驶多少千米？", {"expression": "240/3"}),
    ("长方形的长是 15 米，宽是 6 米，面积是多少平方米？", {"expression": "15*6"}),
    ("正方形的边长是 7 米，面积是多少平方米？", {"expression": "7^2"}),
    ("妈妈带了 300 元，买菜花了 85 元，买水果花了 46.5 元，还剩多少元？", {"expression": "300-85-46.5"}),
    ("一袋米 25 千克，吃掉了 20%，还剩多少千克？", {"expression": "25*(1-20%)"}),
    ("一天有 24 小时，一周有多少小时？", {"expression": "7*24"}),
    ("存款 8000 元，年利率 3%，存 3 年单利，利息是多少元？", {"expression": "8000*3%*3"}),
    ("四次考试分别得了 80、92、85、87 分，平均分是多少？", {"expression": "(80+92+85+87)/4"}),
    ("工人每天做 120 个零件，15 天做多少个？", {"expression": "120*15"}),
    ("240 的 15% 是多少？", {"expression": "15% * 240"}),
    ("班里有 42 个学生，其中 18 个是男生，女生有多少个？", {"expression": "42-18"}),
    ("一辆汽车每小时行驶 80 千米，4.5 小时行驶多少千米？", {"expression": "80*4.5"}),
    ("把 96 个苹果平均分给 8 个小朋友，每人分几个？", {"expression": "96/8"}),
    ("一件衣服原价 200 元，打八折后多少钱？", {"expression": "200*8/10"}),
    ("小红买了 3 本书，每本 12 元，又买了一支 5 元的笔，一共花了多少钱？", {"expression": "3*12+5"}),
    ("三个数 88、92、79 的平均数是多少？", {"expression": "(88+92+79)/3"}),
    ("计算 (3+5)*12 的结果", {"expression": "(3+5)*12"}),
    ("1/3 加 1/6 等于多少？", {"expression": "1/3+1/6"}),
    ("帮我算一下 20 的阶乘", {"expression": "factorial(20)"}),
]

RETRIEVE: list[Demo] = [
    ("What do my notes say about LoRA fine-tuning?", {"query": "LoRA fine-tuning"}),
    ("According to the knowledge base, what are the limits of RAG?", {"query": "limits of RAG"}),
    ("Find the passage in my documents that explains RLHF.", {"query": "RLHF"}),
    ("In my notes, why does layer normalisation help training?", {"query": "why layer normalisation helps training"}),
    ("在我的文档里查一下知识蒸馏是什么", {"query": "知识蒸馏是什么"}),
    ("根据我的笔记，Decoder only 结构有什么优点？", {"query": "Decoder only 结构的优点"}),
    ("资料库里关于幻觉的内容有哪些？", {"query": "幻觉"}),
    ("我的笔记里怎么解释位置编码？", {"query": "位置编码"}),
]

SEARCH: list[Demo] = [
    ("Search the web for the latest Python release.", {"query": "latest Python release"}),
    ("Look up who invented the transistor.", {"query": "who invented the transistor"}),
    ("上网搜一下明天北京的天气", {"query": "明天北京天气"}),
]


IMAGE_INFO: list[Demo] = [
    ("How big is this picture?\n[attached image: uploads/photo.png]", {"image": "uploads/photo.png"}),
    ("What colour is this image mostly?\n[attached image: uploads/sky.jpg]", {"image": "uploads/sky.jpg"}),
    ("这张图片是什么格式的？\n[attached image: uploads/scan.png]", {"image": "uploads/scan.png"}),
]

CAPTION_IMAGE: list[Demo] = [
    ("Describe this picture.\n[attached image: uploads/beach.jpg]", {"image": "uploads/beach.jpg"}),
    ("How many people are in this photo?\n[attached image: uploads/team.png]", {"image": "uploads/team.png", "question": "How many people are in this photo?"}),
    ("描述一下这张图片\n[attached image: uploads/cat.png]", {"image": "uploads/cat.png"}),
]

GENERATE_IMAGE: list[Demo] = [
    ("Draw a red fox in the snow.", {"prompt": "a red fox in the snow"}),
    ("Make a watercolour picture of a lighthouse at dusk.", {"prompt": "watercolour painting of a lighthouse at dusk"}),
    ("画一只戴帽子的猫", {"prompt": "a cat wearing a hat"}),
]

REMEMBER: list[Demo] = [
    ("Remember that my name is Ada.", {"text": "The user's name is Ada."}),
    ("Keep in mind that I am allergic to peanuts.", {"text": "The user is allergic to peanuts."}),
    ("记住我喜欢水彩风格", {"text": "用户喜欢水彩风格。"}),
]

RECALL: list[Demo] = [
    ("What is my name?", {"query": "user's name"}),
    ("Do you remember which style I like?", {"query": "preferred style"}),
    ("你还记得我住在哪里吗？", {"query": "用户住在哪里"}),
]

BY_TOOL: dict[str, list[Demo]] = {
    "calculator": CALCULATOR,
    "retrieve": RETRIEVE,
    "search": SEARCH,
    "image_info": IMAGE_INFO,
    "caption_image": CAPTION_IMAGE,
    "generate_image": GENERATE_IMAGE,
    "remember": REMEMBER,
    "recall": RECALL,
}


def demonstrations(tool: str) -> list[Demo]:
    """The worked examples of `tool` ([] for tools without any, e.g. a client's or an MCP server's)."""
    return list(BY_TOOL.get(tool, []))
