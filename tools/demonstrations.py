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
    ("Anna has 35 marbles and Ben has 52. How many more marbles does Ben have?", {"expression": "52-35"}),
    ("A scarf costs 16 dollars and a hat costs 9.5 dollars more than the scarf. What does the hat cost?", {"expression": "16+9.5"}),
    ("A pack of 12 pens costs 9 dollars. How much does one pen cost?", {"expression": "9/12"}),
    ("A truck travels 360 km on 40 litres of diesel. How many km does it travel per litre?", {"expression": "360/40"}),
    ("How many grams are there in 3.2 kilograms?", {"expression": "3.2*1000"}),
    ("How many kilograms are 750 grams?", {"expression": "750/1000"}),
    ("How many hours are 210 minutes?", {"expression": "210/60"}),
    ("How many centimetres are there in 4.5 metres?", {"expression": "4.5*100"}),
    ("How many minutes are there in 2 days?", {"expression": "2*24*60"}),
    ("A hotel room costs 90 dollars plus 10% tax. What is the total?", {"expression": "90*(1+10%)"}),
    ("Rent rose from 800 to 880 dollars. By what percent did it rise?", {"expression": "(880-800)/800*100"}),
    ("Joe scored 18 out of 20 on a test. What percentage is that?", {"expression": "18/20*100"}),
    ("A field is 30 m long and 12 m wide. What is its perimeter?", {"expression": "2*(30+12)"}),
    ("Kim walks 0.8 km to the library and back every day. How far does she walk in 6 days?", {"expression": "0.8*2*6"}),
    ("Max saves 20 dollars a week for 6 weeks, then spends 45 dollars. How much does he have?", {"expression": "20*6-45"}),
    ("Pens cost 1.2 dollars. Liz buys 5 pens and pays with a 10 dollar note. What is her change?", {"expression": "10-5*1.2"}),
    ("Shirts cost 25 dollars, with 4 dollars off each in a sale. What do 3 shirts cost in the sale?", {"expression": "(25-4)*3"}),
    ("500 dollars grow by 4% a year, compounded yearly. How much is there after 2 years?", {"expression": "500*(1+4%)^2"}),
    ("5 machines make 200 bolts an hour. How many bolts do 8 machines make in an hour?", {"expression": "200/5*8"}),
    ("A class of 30 pupils has 40% boys. How many girls are there?", {"expression": "30*(1-40%)"}),
    ("A 2 litre jug fills cups of 0.2 litres. How many cups can it fill?", {"expression": "2/0.2"}),
    ("It was -5 degrees at night and 8 degrees at noon. By how many degrees did it warm up?", {"expression": "8-(-5)"}),
    ("150 cards are shared equally among 6 players. How many cards does each player get?", {"expression": "150/6"}),
    ("A bus drives at 65 km/h for 4 hours. How far does it go?", {"expression": "65*4"}),
    ("How many metres are there in 1.8 kilometres?", {"expression": "1.8*1000"}),
    ("How many grams are 0.6 kilograms?", {"expression": "0.6*1000"}),
    ("A jar holds 400 g of honey and is 30% full. How much honey is in it?", {"expression": "400*30%"}),
    ("A ribbon 8.4 m long is cut into 6 equal parts. How long is each part?", {"expression": "8.4/6"}),
    ("A shop sold 34 bikes in May and 51 in June. How many more did it sell in June?", {"expression": "51-34"}),
    ("A swimmer swims 20 lengths of a 50 m pool. How many kilometres is that?", {"expression": "20*50/1000"}),
    ("A loaf needs 300 g of flour. How many kilograms of flour do 4 loaves need?", {"expression": "300*4/1000"}),
    ("One foot is 30.48 cm. How many centimetres are 4 feet?", {"expression": "30.48*4"}),
    ("A trader buys a bike for 150 dollars and sells it for 180 dollars. What is the profit as a percentage of the cost?", {"expression": "(180-150)/150*100"}),
    ("4 painters paint 2 rooms a day. How many rooms do 8 painters paint in 3 days?", {"expression": "2*(8/4)*3"}),
    ("How many seconds are there in 2 days?", {"expression": "2*24*60*60"}),
    ("What is 3 to the power of 5?", {"expression": "3^5"}),
    ("A cap costs 8 dollars. Sue buys 4 caps. How much does she pay?", {"expression": "8*4"}),
    ("Raj has 20 dollars and spends 7.25 dollars on lunch. How much does he have left?", {"expression": "20-7.25"}),
    ("A box of 30 chocolates costs 12 dollars. What does one chocolate cost?", {"expression": "12/30"}),
    ("Tea costs 2.5 dollars a cup. Leo buys 4 cups and a cake for 3 dollars. What does he pay?", {"expression": "2.5*4+3"}),
    ("一支铅笔 1.5 元，买 7 支要多少钱？", {"expression": "1.5*7"}),
    ("一列火车 3 小时行驶了 240 千米，平均每小时行驶多少千米？", {"expression": "240/3"}),
    ("长方形的长是 15 米，宽是 6 米，面积是多少平方米？", {"expression": "15*6"}),
    ("正方形的边长是 7 米，面积是多少平方米？", {"expression": "7^2"}),
    ("妈妈带了 300 元，买菜花了 85 元，买水果花了 46.5 元，还剩多少元？", {"expression": "300-85-46.5"}),
    ("一袋米 25 千克，吃掉了 20%，还剩多少千克？", {"expression": "25*(1-20%)"}),
    ("一天有 24 小时，一周有多少小时？", {"expression": "7*24"}),
    ("存款 8000 元，年利率 3%，存 2 年单利，利息是多少元？", {"expression": "8000*3%*2"}),
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
    ("小明有 35 张卡片，小刚有 52 张，小刚比小明多几张？", {"expression": "52-35"}),
    ("一个书包 60 元，一个文具盒比书包便宜 22.5 元，文具盒多少元？", {"expression": "60-22.5"}),
    ("一件上衣 128 元，一条裤子比上衣贵 36 元，裤子多少元？", {"expression": "128+36"}),
    ("一盒鸡蛋 12 个，共 15.6 元，每个鸡蛋多少元？", {"expression": "15.6/12"}),
    ("4.2 千米等于多少米？", {"expression": "4.2*1000"}),
    ("1500 克等于多少千克？", {"expression": "1500/1000"}),
    ("120 分钟是多少小时？", {"expression": "120/60"}),
    ("1.5 小时等于多少分钟？", {"expression": "1.5*60"}),
    ("3.4 米等于多少厘米？", {"expression": "3.4*100"}),
    ("一台冰箱原价 2500 元，现在降价 12%，现价多少元？", {"expression": "2500*(1-12%)"}),
    ("一种商品原价 300 元，提价 15% 后是多少元？", {"expression": "300*(1+15%)"}),
    ("全班有 45 人，其中 60% 是女生，女生有多少人？", {"expression": "45*60%"}),
    ("一批零件有 200 个，合格的有 190 个，合格率是百分之几？", {"expression": "190/200*100"}),
    ("去年产量是 400 吨，今年是 460 吨，增长了百分之几？", {"expression": "(460-400)/400*100"}),
    ("一个长方形长 20 厘米，宽 8 厘米，周长是多少厘米？", {"expression": "2*(20+8)"}),
    ("一件衣服原价 500 元，打六五折后多少元？", {"expression": "500*6.5/10"}),
    ("铅笔每支 0.8 元，买 6 支，付了 10 元，应找回多少元？", {"expression": "10-6*0.8"}),
    ("一本书有 240 页，已经看了 30%，还剩多少页没看？", {"expression": "240*(1-30%)"}),
    ("2 吨水平均装进 8 个水箱，每个水箱装多少吨？", {"expression": "2/8"}),
    ("每个包子用 0.05 千克面粉，2 千克面粉能做多少个包子？", {"expression": "2/0.05"}),
    ("3 台机器每小时生产 90 个零件，5 台机器每小时生产多少个？", {"expression": "90/3*5"}),
    ("每张门票 30 元，团体票每张便宜 5 元，买 10 张团体票要多少元？", {"expression": "(30-5)*10"}),
    ("小华带了 50 元，买书花了 23.5 元，还剩多少元？", {"expression": "50-23.5"}),
    ("2.5 千克等于多少克？", {"expression": "2.5*1000"}),
    ("90 分钟等于多少小时？", {"expression": "90/60"}),
    ("一根 7.2 米长的铁丝平均分成 3 段，每段长多少米？", {"expression": "7.2/3"}),
    ("三年级有 120 人，四年级有 135 人，四年级比三年级多多少人？", {"expression": "135-120"}),
    ("小李每月收入 6000 元，每月花掉 70%，每月花掉多少元？", {"expression": "6000*70%"}),
    ("小红家离公园 0.6 千米，她每天往返一次，7 天一共走多少千米？", {"expression": "0.6*2*7"}),
    ("一台电视进价 2000 元，售价 2600 元，利润是进价的百分之几？", {"expression": "(2600-2000)/2000*100"}),
    ("有 3 千克糖，每袋装 0.5 千克，能装多少袋？", {"expression": "3/0.5"}),
    ("一段路长 48 千米，已经修了 25%，还剩多少千米没修？", {"expression": "48*(1-25%)"}),
    ("一个水桶能装 20 升水，现在装了 45%，装了多少升？", {"expression": "20*45%"}),
    ("一次比赛共 40 题，小明答对了 34 题，正确率是百分之几？", {"expression": "34/40*100"}),
    ("一辆卡车每小时行 60 千米，2.5 小时行多少千米？", {"expression": "60*2.5"}),
    ("一条船 4 小时行了 98 千米，平均每小时行多少千米？", {"expression": "98/4"}),
    ("一本字典 36 元，一本词典比字典贵 14.5 元，词典多少元？", {"expression": "36+14.5"}),
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
