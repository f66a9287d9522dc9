"""The layer code of a student's study notes (seed-notes.md), as one importable file.

Verbatim from the notebook cells, Korean comments included; left out: the Jupyter magics, the
apple/orange demo cells and their prints, the mask and transpose demos, the TwoLayerNet cell (it
needs the book's ``common`` package) and the second, identical copy of the Affine cell (the notes
pasted it twice; the copy also ends ``return dX# 전치행렬``).

What the suite finds (CONTRACT.md section 3):
- MulLayer, AddLayer, Sigmoid: correct (Sigmoid's ``np.exp(-x)`` overflows with a RuntimeWarning
  for x < -709, but the value it returns, 0, is right).
- ReLU: correct values; backward writes into ``dout`` and returns it (strict: mutates-dout,
  aliases-output).
- Affine: forward stores ``self.original_X_shape``, backward reads ``self.original_x_shape``
  (exception).
- SoftmaxWithLoss: calls ``softmax`` and ``cross_entropy_error``, which the notes never define
  (exception).
- softmax, cross_entropy_error, TwoLayerNet: not defined (not-found).
"""
import numpy as np


# 곱셈 계층 구현
class MulLayer:
  
  # 곱셈 계층으로 들어오고 있는 값을 저장할 변수 만들기
  # 저장하는 이유? backward 할 때 각각 반대로 곱해서 리턴해야하기 때문
  # -> x 방향으로 갈 때는 dout*y
  # -> y 방향으로 갈 때는 dout*x
  def __init__(self):
    self.x = None
    self.y = None

  # 노드로 들어온 값에 대한 곱을 수행
  def forward(self, x, y):
    self.x = x
    self.y = y
    out = x * y
    return out

  # 다음 계층에서 역전파된 미분값(dout)에 흘러들어온 x, y를 각각 바꿔서 곱한 값을 리턴
  def backward(self, dout):
    # 무조건 미분값이 리턴됨
    dx = self.y * dout
    dy = self.x * dout
    return dx, dy


class AddLayer:
  # 덧셈 계층의 특징
  # 역전파 때 미분값이 들어오면 그대로 입력 신호에 거꾸로 흘려보내줌
  def __init__(self):
    # 초기화 과정에서 변수로 입력 된 값을 저장할 필요는 없음
    pass
    
  def forward(self, x, y):
    out = x + y
    return out

  def backward(self, dout):
    # 곱셈 계층의 모양과 비슷하게 해주기 위함
    dx = dout * 1
    dy = dout * 1
    return dx, dy


class ReLU:
    def __init__(self):
      self.mask = None
    
    def forward(self, x):
      self.mask = (x <= 0) # 매개변수로 들어온 넘파이배열 x의 원소가  0이하인지 판단하기
      out = x.copy() # 원본 배열 복사 후
      out[self.mask] = 0 # 0보다 작은 원소들을 0으로 만들기
      return out
    
    # backward로 들어오는 미분값이 들어있는 배열은
    # forward 때와는 다르게 원래 0이었던 곳에 0이 아닌 값이 들어갈 수도 있음
    # 따라서 원래 0이었던 곳(mask)은 전부 0으로 다시 바꿔 줌
    def backward(self, dout):
      # 미분값들이 들어있는 배열에다가도 마스킹 처리
      dout[self.mask] = 0 # 상류에서 들어온 값에서 0보다 작은 값들에 대해 0으로 치환
      dx = dout # 완성된 ReLU 배열 리턴
      return dx


# 시그모이드 계층 만들기
# 시그모이드 함수가 y라면 시그모이드 함수를 미분했을 때는 y(1-y)임
# 즉, 순전파 진행 시에 y의 결과값을 저장하고 있으면 이 값을 그대로 역전파 때 활용 할 수 있음
class Sigmoid:
    # 순전파 때 계산되었던 값을 가지고 있음
    def __init__(self):
      self.out = None
    
    def forward(self, x):
      out = 1 / ( 1 + np.exp(-x))
      self.out = out
      return out
    
    def backward(self, dout):
      dx = dout * (1.0 - self.out) * self.out # dout: 이전층의 미분값
      return dx


class Affine:
  # 초기 가중치, 초기 편향 가지고 있기
    def __init__(self, W, b):
      self.W = W
      self.b = b
       
      self.X = None
      self.original_X_shape = None # 원본 데이터의 모양을 유지하기 위한 변수
      # 가중치와 편향 매개변수의 미분
      # 경사하강법을 통해 가중치를 업데이트 해야하므로 기존 미분값을 알고 있어야 함
      # 히스토리 남기기
      self.dW = None
      self.db = None

    def forward(self, X):
      # 데이터의 원본 형상을 저장
      # 텐서 대응
      self.original_X_shape = X.shape # 원본 데이터의 형상을 저장해 놓기.
      X = X.reshape(X.shape[0], -1) # 데이터를 1차원으로 변경
      self.X = X

      out = np.dot(self.X, self.W) + self.b

      return out

    def backward(self, dout):
      # X의 입력 신호 방향으로 흘러나가는 값은 미분값 * 가중치의 전치행렬
      dX = np.dot(dout, self.W.T)
      # W의 입력신호 방향으로 흘러나가는 값은 입력값의 전치행렬 * 미분값
      self.dW = np.dot(self.X.T, dout)
      self.db = np.sum(dout, axis=0)
        
      dX = dX.reshape(*self.original_x_shape)  # 입력 데이터 모양을 원래대로 변경(텐서 대응)
      return dX


class SoftmaxWithLoss:
    def __init__(self):
        self.loss = None # 손실함수
        self.y = None    # softmax의 출력
        self.t = None    # 정답 레이블(원-핫 인코딩 형태)
        
    def forward(self, x, t):
        self.t = t
        self.y = softmax(x)
        self.loss = cross_entropy_error(self.y, self.t)
        
        return self.loss

    def backward(self, dout=1):
        batch_size = self.t.shape[0]
        if self.t.size == self.y.size: # 정답 레이블이 원-핫 인코딩 형태일 때
            dx = (self.y - self.t) / batch_size # 데이터 1개당 오차를 앞 계층으로 전파함
        else:
            dx = self.y.copy()
            dx[np.arange(batch_size), self.t] -= 1
            dx = dx / batch_size
        
        return dx
